//! berth's persistent network state in `<root_dir>/network`: who holds which address
//! (`ipam-v4.json`, `ipam-v6.json`) and which pods publish which host ports (`pods.json`).
//! The files are the truth: every operation reloads them under a process-wide lock per
//! state directory and writes them back temp → fsync → rename, so a berthd restart (or a
//! second `BridgeNetwork` on the same directory) sees exactly what was handed out.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use berth_core::pod::ipam::{Allocations, IpamError, Subnet};
use berth_core::pod::ports::PodError;
use berth_core::pod::record::PortMapping;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One address family's pool. `current` hands out new addresses; `draining` keeps earlier
/// subnets (after UpdateRuntimeConfig changed the pod CIDR) valid until their last holder
/// releases its address, so a running pod never loses its address or route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pool {
    /// The subnet berthd's configuration named when this pool was last reconciled with it;
    /// a changed configuration replaces `current` like a pod CIDR update does.
    pub configured: Subnet,
    pub current: Allocations,
    #[serde(default)]
    pub draining: Vec<Allocations>,
}

impl Pool {
    pub fn new(subnet: Subnet) -> Self {
        Self {
            configured: subnet,
            current: Allocations::new(subnet),
            draining: Vec::new(),
        }
    }

    /// The address (and its subnet) `owner` holds in any subnet.
    pub fn of(&self, owner: &str) -> Option<(IpAddr, Subnet)> {
        std::iter::once(&self.current)
            .chain(&self.draining)
            .find_map(|a| a.of(owner).map(|ip| (ip, a.subnet)))
    }

    /// The same address again for a pod that holds one (retries), else a new one from
    /// `current`.
    pub fn allocate(&mut self, owner: &str) -> Result<(IpAddr, Subnet), IpamError> {
        if let Some(held) = self.of(owner) {
            return Ok(held);
        }
        let ip = self.current.allocate(owner)?;
        Ok((ip, self.current.subnet))
    }

    pub fn release(&mut self, owner: &str) -> Option<IpAddr> {
        let mut out = None;
        for a in std::iter::once(&mut self.current).chain(&mut self.draining) {
            out = out.or(a.release(owner));
        }
        self.draining.retain(|a| !a.held.is_empty());
        out
    }

    /// New pods get addresses from `subnet` from now on; holders elsewhere keep theirs.
    pub fn set_subnet(&mut self, subnet: Subnet) {
        if self.current.subnet == subnet {
            return;
        }
        let next = match self.draining.iter().position(|a| a.subnet == subnet) {
            Some(i) => self.draining.remove(i),
            None => Allocations::new(subnet),
        };
        let old = std::mem::replace(&mut self.current, next);
        if !old.held.is_empty() {
            self.draining.push(old);
        }
    }

    /// Subnets that need a gateway on the bridge and a masquerade rule: `current` plus
    /// every draining subnet (each still has holders).
    pub fn live_subnets(&self) -> Vec<Subnet> {
        std::iter::once(self.current.subnet)
            .chain(self.draining.iter().map(|a| a.subnet))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.current.held.is_empty() && self.draining.iter().all(|a| a.held.is_empty())
    }
}

/// What berth remembers per pod beyond its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PodEntry {
    /// Host side of the pod's veth pair.
    pub veth: String,
    pub ports: Vec<PortMapping>,
    /// The interface inside the pod; "" (records from before named networks) is eth0.
    #[serde(default)]
    pub ifname: String,
}

/// Everything in the state directory, loaded at once.
#[derive(Debug, Clone)]
pub(crate) struct State {
    dir: PathBuf,
    pub v4: Pool,
    /// None: not dual stack (and no pod holds an IPv6 address from an earlier config).
    pub v6: Option<Pool>,
    pub pods: BTreeMap<String, PodEntry>,
}

const V4_FILE: &str = "ipam-v4.json";
const V6_FILE: &str = "ipam-v6.json";
const PODS_FILE: &str = "pods.json";

impl State {
    /// Loads the state and reconciles it with the configured subnets.
    pub fn load(dir: &Path, subnet: Subnet, subnet_v6: Option<Subnet>) -> Result<Self, PodError> {
        let mut v4 = read_json::<Pool>(&dir.join(V4_FILE))?.unwrap_or_else(|| Pool::new(subnet));
        if v4.configured != subnet {
            v4.configured = subnet;
            v4.set_subnet(subnet);
        }
        let mut v6 = read_json::<Pool>(&dir.join(V6_FILE))?;
        match (&mut v6, subnet_v6) {
            (Some(p), Some(s)) if p.configured != s => {
                p.configured = s;
                p.set_subnet(s);
            }
            (None, Some(s)) => v6 = Some(Pool::new(s)),
            _ => {}
        }
        let pods = read_json(&dir.join(PODS_FILE))?.unwrap_or_default();
        Ok(Self {
            dir: dir.to_path_buf(),
            v4,
            v6,
            pods,
        })
    }

    pub fn save(&self) -> Result<(), PodError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            PodError::failed("network state", format!("{}: {e}", self.dir.display()))
        })?;
        // Every file is made durable before its rename, but the directory once for all of
        // them: each directory fsync is a journal commit (4 ms and more on a busy disk),
        // paid by every RunPodSandbox and every pod teardown.
        let mut files = vec![stage_json(&self.dir.join(V4_FILE), &self.v4)?];
        if let Some(v6) = &self.v6 {
            files.push(stage_json(&self.dir.join(V6_FILE), v6)?);
        }
        files.push(stage_json(&self.dir.join(PODS_FILE), &self.pods)?);
        for (tmp, path) in &files {
            std::fs::rename(tmp, path).map_err(|e| {
                PodError::failed("network state", format!("{}: {e}", path.display()))
            })?;
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Forgets every pod: all addresses free, no draining subnet, no published port.
    pub fn clear(&mut self) {
        self.v4 = Pool::new(self.v4.configured);
        if let Some(v6) = &mut self.v6 {
            *v6 = Pool::new(v6.configured);
        }
        self.pods.clear();
    }

    /// No pod holds an address or a port: the bridge and the nft table may go.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.v4.is_empty() && self.v6.as_ref().is_none_or(Pool::is_empty)
    }

    /// The addresses `pod` holds: IPv4 first.
    pub fn addresses_of(&self, pod: &str) -> Vec<(IpAddr, Subnet)> {
        self.v4
            .of(pod)
            .into_iter()
            .chain(self.v6.as_ref().and_then(|p| p.of(pod)))
            .collect()
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, PodError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PodError::failed(
                "network state",
                format!("{}: {e}", path.display()),
            ));
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        PodError::failed(
            "network state",
            format!(
                "{}: {e} (fix or remove the file; it records pod addresses)",
                path.display()
            ),
        )
    })
}

/// temp → fsync → rename → fsync(dir): a crash leaves the old or the new file, never half.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PodError> {
    let (tmp, path) = stage_json(path, value)?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| PodError::failed("network state", format!("{}: {e}", path.display())))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Writes `value` to `<path>.json.tmp` and fsyncs it; returns (temp, final path) for the
/// caller's rename.
fn stage_json<T: Serialize>(path: &Path, value: &T) -> Result<(PathBuf, PathBuf), PodError> {
    let fail =
        |e: std::io::Error| PodError::failed("network state", format!("{}: {e}", path.display()));
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| PodError::failed("network state", format!("{}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(&bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    Ok((tmp, path.to_path_buf()))
}

/// Best effort: the renames in `dir` are already visible; this only makes them durable
/// sooner.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The lock serialising every change to one state directory in this process (only berthd
/// writes it). Shared by all `BridgeNetwork`/`CniNetwork` values on the same directory.
pub(crate) fn dir_lock(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(key).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    #[test]
    fn cidr_change_keeps_holders_until_released() {
        let mut p = Pool::new(s("10.1.0.0/24"));
        let (a, _) = p.allocate("a").unwrap();
        p.set_subnet(s("10.2.0.0/24"));
        let (b, sb) = p.allocate("b").unwrap();
        assert_eq!(sb, s("10.2.0.0/24"));
        assert!(s("10.2.0.0/24").contains(b));
        assert_eq!(p.allocate("a").unwrap(), (a, s("10.1.0.0/24")));
        assert_eq!(p.live_subnets().len(), 2);
        assert_eq!(p.release("a"), Some(a));
        assert_eq!(p.live_subnets(), vec![s("10.2.0.0/24")]);
        p.release("b");
        assert!(p.is_empty());
    }

    #[test]
    fn state_round_trips_and_reconciles_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::load(dir.path(), s("10.1.0.0/24"), None).unwrap();
        let (ip, _) = st.v4.allocate("p").unwrap();
        st.pods.insert(
            "p".into(),
            PodEntry {
                veth: "bthp".into(),
                ports: vec![],
                ifname: String::new(),
            },
        );
        st.save().unwrap();
        let again = State::load(dir.path(), s("10.1.0.0/24"), None).unwrap();
        assert_eq!(again.addresses_of("p"), vec![(ip, s("10.1.0.0/24"))]);
        // A new configured subnet: new pods there, the old holder keeps its address.
        let mut moved = State::load(dir.path(), s("10.9.0.0/24"), Some(s("fd00:1::/64"))).unwrap();
        assert_eq!(moved.v4.of("p"), Some((ip, s("10.1.0.0/24"))));
        assert!(s("10.9.0.0/24").contains(moved.v4.allocate("q").unwrap().0));
        assert!(moved.v6.is_some());
        assert!(!moved.is_empty());
    }
}
