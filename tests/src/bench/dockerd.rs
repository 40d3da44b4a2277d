//! Debian's dockerd (20.10, `/usr/sbin/dockerd`) as the reference Docker daemon: private
//! data root, exec root, pidfile and socket in a temp dir, on top of a bench [`Containerd`]
//! of its own (passed with `--containerd`, so its shims carry our process mark), and on a
//! bridge the bench creates (`--bridge`), so the host's docker0 is never touched.
//!
//! dockerd leaves its iptables rules and `DOCKER*` chains behind when it stops; [`Dockerd::stop`]
//! removes those that name our bridge or subnet, the chains, the tables it created when
//! they are empty, the bridge and every mount under the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bench::containerd::Containerd;
use crate::bench::host_cleanup::split_rule;
use crate::procs::{self, MARK_VAR};

/// The bridge dockerd's default network uses ("berth" in it: leakcheck.sh finds a leak).
pub const DOCKERD_BRIDGE: &str = "berthbdk0";
/// Its address and subnet (the berthd benches use 10.199/16, containerd's CNI 10.198/16).
pub const DOCKERD_BRIDGE_CIDR: &str = "10.197.0.1/16";
pub const DOCKERD_SUBNET: &str = "10.197.0.0/16";
/// The address pool of networks dockerd creates (compose's `<project>_default`).
pub const DOCKERD_POOL: &str = "10.196.0.0/16";

/// The dockerd binary: `DOCKERD_BIN`, else `/usr/sbin/dockerd`.
pub fn dockerd_bin() -> PathBuf {
    std::env::var_os("DOCKERD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/dockerd"))
}

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The nftables tables (`ip filter`, `ip nat`, …) present now.
fn nft_tables() -> Vec<String> {
    run(&["nft", "list", "tables"])
        .map(|s| s.lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

/// A running dockerd with its containerd; stopped and cleaned on [`Dockerd::stop`] or drop.
pub struct Dockerd {
    /// `DOCKER_HOST` for clients.
    pub host: String,
    pub log_path: PathBuf,
    pub containerd: Option<Containerd>,
    tables_before: Vec<String>,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    mark: String,
}

impl Dockerd {
    /// Creates the bridge, starts containerd and dockerd, and waits for `/_ping`.
    pub async fn start(plain_http: &[String]) -> Result<Self> {
        let tables_before = nft_tables();
        if crate::pods::leaks::link_exists(DOCKERD_BRIDGE) {
            bail!("bridge {DOCKERD_BRIDGE} exists already: a previous bench leaked it");
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-dockerd-")
            .tempdir()?;
        let d = dir.path().to_path_buf();
        let log_path = d.join("dockerd.log");
        let mut me = Dockerd {
            host: format!("unix://{}", d.join("docker.sock").display()),
            log_path: log_path.clone(),
            containerd: None,
            tables_before,
            dir: Some(dir),
            child: None,
            mark: crate::unique_id("dockerd"),
        };
        run(&["ip", "link", "add", DOCKERD_BRIDGE, "type", "bridge"])?;
        run(&[
            "ip",
            "addr",
            "add",
            DOCKERD_BRIDGE_CIDR,
            "dev",
            DOCKERD_BRIDGE,
        ])?;
        run(&["ip", "link", "set", DOCKERD_BRIDGE, "up"])?;
        me.containerd = Some(
            Containerd::start("info", plain_http)
                .await
                .context("start dockerd's containerd")?,
        );
        let ctrd_sock = me.containerd.as_ref().map(|c| c.socket.clone());
        let log = std::fs::File::create(&log_path)?;
        let config = d.join("daemon.json");
        std::fs::write(&config, "{}\n")?;
        let bin = dockerd_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!(
            "--containerd={}",
            ctrd_sock.unwrap_or_default().display()
        ))
        .arg(format!("--data-root={}", d.join("data").display()))
        .arg(format!("--exec-root={}", d.join("exec").display()))
        .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
        .arg(format!("-H={}", me.host))
        .arg(format!("--bridge={DOCKERD_BRIDGE}"))
        .arg(format!(
            "--default-address-pool=base={DOCKERD_POOL},size=24"
        ))
        // This host lacks CAP_SYS_RESOURCE: the default -500 cannot be set.
        .arg("--oom-score-adjust=0")
        // Not /etc/docker/daemon.json: only these flags.
        .arg(format!("--config-file={}", config.display()));
        for host in plain_http {
            cmd.arg(format!("--insecure-registry={host}"));
        }
        let child = cmd
            .env(MARK_VAR, &me.mark)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {bin:?} (install docker.io)"))?;
        me.child = Some(child);
        if let Err(e) = me.wait_ready(Duration::from_secs(60)) {
            let _ = me.stop();
            return Err(e);
        }
        Ok(me)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        let sock = self.host.trim_start_matches("unix://").to_string();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(st) = child.try_wait()?
            {
                self.child = None;
                bail!("dockerd exited during startup ({st}):\n{}", self.log_tail());
            }
            if crate::bench::uds::ping_http(Path::new(&sock)) {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("dockerd not ready after {timeout:?}:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        format!(
            "---- dockerd log tail ({}) ----\n{}",
            self.log_path.display(),
            crate::tail_file(&self.log_path, 30)
        )
    }

    /// Stops dockerd and its containerd and removes everything they made; errors name
    /// what was left.
    pub fn stop(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                problems.push("dockerd ignored SIGTERM for 30s; killed".to_string());
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // docker-proxy and friends inherit dockerd's environment, hence the mark.
        let left = procs::wait_gone(&self.mark, Duration::from_secs(5));
        if !left.is_empty() {
            procs::kill_all(&left);
            problems.push(format!(
                "dockerd left processes (killed): {}",
                left.iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(mut c) = self.containerd.take()
            && let Err(e) = c.stop()
        {
            problems.push(format!("dockerd's containerd: {e:#}"));
        }
        for line in clean_rules(&self.tables_before) {
            eprintln!("bench: {line}");
        }
        if crate::pods::leaks::link_exists(DOCKERD_BRIDGE)
            && let Err(e) = run(&["ip", "link", "delete", DOCKERD_BRIDGE])
        {
            problems.push(format!("{e:#}"));
        }
        if let Some(dir) = self.dir.take() {
            // The data root is a private bind mount of itself; netns files are bind mounts.
            problems.extend(super::containerd::release_dir(dir, "dockerd"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("\n"))
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if (self.child.is_some() || self.dir.is_some())
            && let Err(e) = self.stop()
        {
            eprintln!("dockerd cleanup: {e:#}");
        }
    }
}

/// Whether an `iptables -S` line is dockerd's: in or jumping to a `DOCKER*` chain, or naming
/// our bridge, subnet or address pool.
pub fn is_dockerd_rule(line: &str) -> bool {
    let pool = DOCKERD_POOL.trim_end_matches("0.0/16");
    let subnet = DOCKERD_SUBNET.trim_end_matches("0.0/16");
    line.starts_with("-A ")
        && (line.contains("DOCKER")
            || line.contains(DOCKERD_BRIDGE)
            || line.contains(subnet)
            || line.contains(pool)
            // Networks dockerd creates get bridges named br-<id>.
            || line.contains(" br-"))
}

/// Removes dockerd's rules and chains from the filter and nat tables, then the tables that
/// were not there before (`tables_before`) if nothing else is left in them. One line per action.
pub fn clean_rules(tables_before: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["filter", "nat"] {
        let rules = run(&["iptables", "-t", table, "-S"]).unwrap_or_default();
        let mut chains = Vec::new();
        for line in rules.lines() {
            if let Some(chain) = line.strip_prefix("-N ").filter(|c| c.starts_with("DOCKER")) {
                chains.push(chain.to_string());
            }
        }
        // Rules in DOCKER* chains go with the chains (flushed below).
        for line in rules.lines().filter(|l| is_dockerd_rule(l)) {
            let mut args = split_rule(line);
            if args.get(1).is_some_and(|c| c.starts_with("DOCKER")) {
                continue;
            }
            args[0] = "-D".into();
            let mut cmd = vec!["iptables", "-t", table];
            cmd.extend(args.iter().map(String::as_str));
            match run(&cmd) {
                Ok(_) => out.push(format!("removed dockerd's {table} rule `{line}`")),
                Err(e) => out.push(format!("LEAK: {table} rule `{line}`: {e:#}")),
            }
        }
        for chain in &chains {
            let _ = run(&["iptables", "-t", table, "-F", chain]);
        }
        for chain in &chains {
            match run(&["iptables", "-t", table, "-X", chain]) {
                Ok(_) => out.push(format!("removed dockerd's {table} chain {chain}")),
                Err(e) => out.push(format!("LEAK: {table} chain {chain}: {e:#}")),
            }
        }
        let name = format!("table ip {table}");
        if !tables_before.contains(&name) && nft_tables().contains(&name) {
            let left = run(&["iptables", "-t", table, "-S"]).unwrap_or_default();
            if left.lines().all(|l| l.starts_with("-P ")) {
                match run(&["nft", "delete", "table", "ip", table]) {
                    Ok(_) => out.push(format!("removed the {name} dockerd created")),
                    Err(e) => out.push(format!("LEAK: {name}: {e:#}")),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_dockerd_rule;

    #[test]
    fn finds_dockerd_rules_only() {
        assert!(is_dockerd_rule("-A FORWARD -j DOCKER-USER"));
        assert!(is_dockerd_rule(
            "-A POSTROUTING -s 10.197.0.0/16 ! -o berthbdk0 -j MASQUERADE"
        ));
        assert!(is_dockerd_rule(
            "-A FORWARD -i br-1a2b3c ! -o br-1a2b3c -j ACCEPT"
        ));
        assert!(!is_dockerd_rule("-N DOCKER"));
        assert!(!is_dockerd_rule(
            "-A POSTROUTING -s 10.198.0.24/32 -j CNI-23f6"
        ));
    }
}
