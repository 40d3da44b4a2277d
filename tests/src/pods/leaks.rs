//! A berthd with its own pod network ([`PodTest`]) and the checks that a test left nothing
//! behind: mounts, pod dirs, pinned namespaces, veths, the bridge, berth's nft table,
//! cgroups, held IP addresses and pod processes.
//!
//! [`PodTest::finish`] removes every pod over the CRI and fails with the list of leftovers.
//! On drop (e.g. a failed test) the pods are removed too, and whatever is still there is
//! force-cleaned so one failing test does not pollute the others.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};
use serde_json::Value;

use super::rpc::{self, Runtime};
use super::{PodNet, PodSpec, host};
use crate::cri::runtime_service_client::RuntimeServiceClient;
use crate::{Berthd, BerthdOptions, procs};

pub struct PodTest {
    pub d: Berthd,
    pub net: PodNet,
    /// berthd's root and run dirs (they differ from `d`'s when sharing another's state).
    pub root_dir: PathBuf,
    pub run_dir: PathBuf,
    /// Every pod id this test created (for per-pod leak checks).
    ids: Mutex<Vec<String>>,
}

impl PodTest {
    /// berthd with a fresh [`PodNet`].
    pub async fn start() -> Result<Self> {
        Self::start_with("", Vec::new()).await
    }

    /// berthd with a fresh [`PodNet`], `extra` TOML and `env`.
    pub async fn start_with(extra: &str, env: Vec<(String, String)>) -> Result<Self> {
        Self::start_on(PodNet::unique(), extra, env).await
    }

    pub async fn start_on(net: PodNet, extra: &str, env: Vec<(String, String)>) -> Result<Self> {
        let opts = BerthdOptions {
            extra_toml: format!("{}{extra}", net.toml()),
            env,
        };
        let d = Berthd::start_with(opts).await?;
        Ok(Self {
            root_dir: d.root_dir.clone(),
            run_dir: d.run_dir.clone(),
            d,
            net,
            ids: Mutex::new(Vec::new()),
        })
    }

    /// A second berthd on `other`'s root and run dirs and network (which must be stopped),
    /// with `env`: the same node after a daemon upgrade or a config change.
    pub async fn start_sharing(other: &PodTest, env: Vec<(String, String)>) -> Result<Self> {
        let extra = format!(
            "root_dir = {:?}\nrun_dir = {:?}\n",
            other.root_dir.display().to_string(),
            other.run_dir.display().to_string()
        );
        // Top-level keys must precede tables in TOML.
        let opts = BerthdOptions {
            extra_toml: format!("{extra}{}", other.net.toml()),
            env,
        };
        let d = Berthd::start_with(opts).await?;
        Ok(Self {
            root_dir: other.root_dir.clone(),
            run_dir: other.run_dir.clone(),
            d,
            net: other.net.clone(),
            ids: Mutex::new(other.ids()),
        })
    }

    pub async fn rt(&self) -> Result<Runtime> {
        self.d.runtime().await
    }

    pub fn track(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// RunPodSandbox; the id is remembered for the leak checks.
    pub async fn run(&self, c: &mut Runtime, spec: &PodSpec) -> Result<String> {
        let name = spec
            .config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let id = rpc::run(c, &spec.config).await.map_err(|s| {
            anyhow::anyhow!("RunPodSandbox {name}: {:?}: {}", s.code(), s.message())
        })?;
        self.track(&id);
        Ok(id)
    }

    pub fn pin(&self, id: &str, kind: &str) -> PathBuf {
        host::pin(&self.run_dir, id, kind)
    }

    pub fn pod_dir(&self, id: &str) -> PathBuf {
        host::pod_dir(&self.run_dir, id)
    }

    /// Addresses held in `<root_dir>/network/ipam-v4.json`, as (ip, owner).
    pub fn ipam_held(&self) -> Result<Vec<(String, String)>> {
        ipam_held(&self.root_dir.join("network/ipam-v4.json"))
    }

    /// Everything this test's pods could have left on the host.
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in procs::mounts_under(self.d.dir()) {
            out.push(format!("mount {m}"));
        }
        if self.run_dir != self.d.run_dir {
            for m in procs::mounts_under(&self.run_dir) {
                out.push(format!("mount {m}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.run_dir.join("pods")) {
            for e in rd.flatten() {
                out.push(format!("pod dir {}", e.path().display()));
            }
        }
        // The bridge and the table are berthd's while it runs (kept with no pod); they must
        // be gone once it has stopped (`network.remove_on_exit`).
        let stopped = self.d.pid().is_none();
        if stopped && link_exists(&self.net.bridge) {
            out.push(format!("bridge {}", self.net.bridge));
        }
        for id in self.ids() {
            let veth = veth_name(&id);
            if link_exists(&veth) {
                out.push(format!("veth {veth} (pod {id})"));
            }
        }
        if stopped && nft_table_exists(&self.net.nft_table()) {
            out.push(format!("nft table inet {}", self.net.nft_table()));
        }
        for dir in cgroup_dirs(&self.net.cgroup_parent) {
            for child in subdirs(&dir) {
                out.push(format!("cgroup {}", child.display()));
            }
        }
        match self.ipam_held() {
            Ok(held) => {
                for (ip, owner) in held {
                    out.push(format!("IP {ip} held by {owner}"));
                }
            }
            Err(e) => out.push(format!("ipam file: {e:#}")),
        }
        let berthd = self.d.pid().map(|p| p as i32);
        for p in procs::marked(self.d.mark()) {
            if Some(p.pid) != berthd {
                out.push(format!("process {p}"));
            }
        }
        out
    }

    /// `leakcheck.sh` lines naming anything of this test (other tests run in parallel, so
    /// its global view is filtered); None when the script is not found.
    pub fn leakcheck(&self) -> Option<Vec<String>> {
        let script = leakcheck_script()?;
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut needles = vec![
            self.net.bridge.clone(),
            self.d.dir().display().to_string(),
            self.net.cgroup_parent.trim_start_matches('/').to_string(),
        ];
        needles.extend(self.ids().iter().map(|id| veth_name(id)));
        // Not leaks: the running berthd itself, and the cgroup parent (like the kubelet's
        // pod parents, it belongs to the caller; the test's drop removes it).
        let berthd = self.d.pid().map(|p| format!("leak: process: {p} "));
        let parent = self.net.cgroup_parent.clone();
        Some(
            text.lines()
                .filter(|l| l.starts_with("leak:") && needles.iter().any(|n| l.contains(n)))
                .filter(|l| !(l.starts_with("leak: cgroup:") && l.ends_with(&parent)))
                .filter(|l| berthd.as_ref().is_none_or(|b| !l.starts_with(b.as_str())))
                .map(String::from)
                .collect(),
        )
    }

    /// Removes every pod over the CRI and stops berthd (which removes its bridge and nft
    /// table: `network.remove_on_exit`), then fails when anything is left behind.
    pub async fn finish(mut self) -> Result<()> {
        let mut c = self.rt().await?;
        rpc::remove_all(&mut c).await?;
        drop(c);
        self.d.stop_and_clean().await?;
        let mut leaks = self.leaks();
        if let Some(lines) = self.leakcheck() {
            leaks.extend(lines);
        }
        if !leaks.is_empty() {
            bail!(
                "left behind after removing every pod:\n  {}",
                leaks.join("\n  ")
            );
        }
        Ok(())
    }

    /// Last-resort cleanup of host state (drop of a failed test).
    fn force_clean(&self) {
        // Pod processes first (berthd's own leftover check would panic and hide the test's
        // error), then mounts, links and the table.
        let berthd = self.d.pid().map(|p| p as i32);
        let pods: Vec<procs::Leftover> = procs::marked(self.d.mark())
            .into_iter()
            .filter(|p| Some(p.pid) != berthd)
            .collect();
        procs::kill_all(&pods);
        for m in procs::mounts_under(&self.run_dir).iter().rev() {
            if umount2(m.as_str(), MntFlags::empty()).is_err() {
                let _ = umount2(m.as_str(), MntFlags::MNT_DETACH);
            }
        }
        for id in self.ids() {
            quiet(Command::new("ip").args(["link", "del", &veth_name(&id)]));
        }
        quiet(Command::new("ip").args(["link", "del", &self.net.bridge]));
        quiet(Command::new("nft").args(["delete", "table", "inet", &self.net.nft_table()]));
    }
}

fn quiet(cmd: &mut Command) {
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for PodTest {
    fn drop(&mut self) {
        let socket = self.d.socket.clone();
        // After finish() berthd is stopped: nothing to remove over the CRI.
        let left = if self.d.pid().is_some() {
            std::thread::spawn(move || blocking_remove_all(socket))
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("cleanup thread panicked")))
        } else {
            Ok(0)
        };
        let leaks = self.leaks();
        if matches!(left, Ok(n) if n > 0) || left.is_err() || !leaks.is_empty() {
            eprintln!(
                "pod test cleanup: removed pods: {left:?}; leftovers being force-cleaned: {leaks:?}"
            );
            self.force_clean();
        }
        for dir in cgroup_dirs(&self.net.cgroup_parent) {
            remove_cgroup_tree(&dir);
        }
    }
}

fn blocking_remove_all(socket: PathBuf) -> Result<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ch = crate::bench::uds::connect(&socket).await?;
        let mut c = RuntimeServiceClient::new(ch);
        rpc::remove_all(&mut c).await
    })
}

/// The host side veth name berth gives a pod: `bth` + the first 11 characters of its id.
pub fn veth_name(id: &str) -> String {
    format!("bth{}", &id[..id.len().min(11)])
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub fn nft_table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", table])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Mount points of the cgroup hierarchies (v1 controllers and/or the v2 tree).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let fstype = *f.get(dash + 1)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(f[4]))
        })
        .collect()
}

/// `<hierarchy>/<path>` in every hierarchy where it exists.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(rel))
        .filter(|d| d.is_dir())
        .collect()
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// rmdir, deepest first (cgroup dirs hold only kernel files, which rmdir ignores).
pub fn remove_cgroup_tree(dir: &Path) {
    for child in subdirs(dir) {
        remove_cgroup_tree(&child);
    }
    if let Err(e) = std::fs::remove_dir(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("pod test cleanup: rmdir {}: {e}", dir.display());
    }
}

/// Held addresses in an IPAM pool file (`current` and `draining` allocations).
pub fn ipam_held(file: &Path) -> Result<Vec<(String, String)>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {file:?}")),
    };
    let v: Value = serde_json::from_str(&text).with_context(|| format!("parse {file:?}"))?;
    let mut out = Vec::new();
    let mut pools = vec![&v["current"]];
    if let Some(d) = v["draining"].as_array() {
        pools.extend(d.iter());
    }
    for p in pools {
        if let Some(held) = p["held"].as_object() {
            for (ip, owner) in held {
                out.push((ip.clone(), owner.as_str().unwrap_or_default().to_string()));
            }
        }
    }
    Ok(out)
}

/// `shared/tools/leakcheck.sh`: `BERTH_LEAKCHECK`, else next to the checkout.
pub fn leakcheck_script() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_LEAKCHECK").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let p = crate::workspace_root()
        .parent()?
        .join("shared/tools/leakcheck.sh");
    p.is_file().then_some(p)
}
