//! Acting inside a pod from the host before containers exist: commands in the pod's pinned
//! network namespace (`nsenter --net=<pin>`), ping, a TCP server, namespace identities.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::procs::MARK_VAR;

/// `<run_dir>/pods/<id>`: resolv.conf, hosts, hostname, shm.
pub fn pod_dir(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("pods").join(id)
}

/// `<run_dir>/pods/<id>/ns/<kind>` (net, ipc, uts).
pub fn pin(run_dir: &Path, id: &str, kind: &str) -> PathBuf {
    pod_dir(run_dir, id).join("ns").join(kind)
}

/// `nsenter --net=<pin> -- <args>`.
pub fn in_netns(pin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", pin.display()))
        .arg("--")
        .args(args)
        .stdin(Stdio::null());
    c
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Runs `cmd`, failing with its output when it exits non-zero; returns stdout.
pub fn output_ok(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!("{}", describe(what, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Reads a file as a process in the pod's network namespace sees it (e.g. /proc/sys/net/...).
pub fn read_in_netns(pin: &Path, file: &str) -> Result<String> {
    output_ok(
        in_netns(pin, &["cat", file]),
        &format!("cat {file} in {pin:?}"),
    )
}

/// Pings `ip` once (three tries, 2 s each) from the pod's netns, or from the host when
/// `pin` is None.
pub fn ping(pin: Option<&Path>, ip: Ipv4Addr) -> Result<()> {
    let ip_s = ip.to_string();
    let args = ["busybox", "ping", "-c", "1", "-W", "2", ip_s.as_str()];
    let mut last = String::new();
    for _ in 0..3 {
        let mut cmd = match pin {
            Some(p) => in_netns(p, &args),
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]).stdin(Stdio::null());
                c
            }
        };
        let out = cmd.output().context("run busybox ping")?;
        if out.status.success() {
            return Ok(());
        }
        last = describe(&format!("ping {ip} from {pin:?}"), &out);
    }
    bail!("{last}")
}

/// The inode of a namespace file (a pin or /proc/PID/ns/KIND): equal inodes, same namespace.
pub fn ns_inode(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {path:?}"))?
        .ino())
}

/// The host's network namespace inode (this test process's).
pub fn host_netns_inode() -> Result<u64> {
    ns_inode(Path::new("/proc/self/ns/net"))
}

/// The node's own IPv4 address: the first global address not on a berth/CNI bridge.
pub fn node_ip() -> Result<Ipv4Addr> {
    let out = output_ok(
        {
            let mut c = Command::new("ip");
            c.args(["-o", "-4", "addr", "show", "scope", "global"]);
            c
        },
        "ip addr",
    )?;
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(addr)) = (f.get(1), f.get(3)) else {
            continue;
        };
        if dev.contains("berth") || dev.starts_with("cni") || dev.starts_with("bth") {
            continue;
        }
        if let Some(ip) = addr.split('/').next().and_then(|a| a.parse().ok()) {
            return Ok(ip);
        }
    }
    bail!("no global IPv4 address on this node:\n{out}")
}

/// The filesystem type mounted at exactly `path` (from /proc/self/mountinfo), if any.
pub fn mount_fstype(path: &Path) -> Option<String> {
    let want = path.to_string_lossy().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        if f.get(4) != Some(&want.as_str()) {
            return None;
        }
        let dash = f.iter().position(|x| *x == "-")?;
        f.get(dash + 1).map(|s| s.to_string())
    })
}

/// A TCP server (busybox nc, persistent) answering `reply` on `port` inside a pod's netns.
/// Killed on drop.
pub struct PodServer {
    child: Child,
}

impl PodServer {
    pub fn start(pin: &Path, port: u16, reply: &str) -> Result<Self> {
        let p = port.to_string();
        let child = in_netns(
            pin,
            &["busybox", "nc", "-ll", "-p", &p, "-e", "echo", reply],
        )
        .env(MARK_VAR, crate::unique_id("pod-server"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn nsenter busybox nc -ll")?;
        let mut me = Self { child };
        me.wait_listening(pin, port, Duration::from_secs(5))?;
        Ok(me)
    }

    /// Polls /proc/net/tcp{,6} as seen in the pod's netns for a LISTEN socket on `port`
    /// (busybox nc listens on `::` where IPv6 is up).
    fn wait_listening(&mut self, pin: &Path, port: u16, timeout: Duration) -> Result<()> {
        let needle = format!(":{port:04X}");
        let until = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("pod TCP server exited at once ({st})");
            }
            let tcp = read_in_netns(pin, "/proc/net/tcp").unwrap_or_default()
                + &read_in_netns(pin, "/proc/net/tcp6").unwrap_or_default();
            // Local address ends in :PORT and the state column (4th) is 0A (LISTEN).
            let listening = tcp.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&needle) && f[3] == "0A"
            });
            if listening {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("pod TCP server not listening on {port} after {timeout:?}:\n{tcp}");
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

impl Drop for PodServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to `addr` and reads until EOF (the server closes after its reply).
pub fn tcp_read(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .with_context(|| format!("read from {addr}"))?;
    Ok(buf)
}

/// [`tcp_read`] with a few retries (the first SYN may race the rule load or ARP).
pub fn tcp_read_retry(addr: SocketAddr) -> Result<String> {
    let mut last = None;
    for _ in 0..3 {
        match tcp_read(addr, Duration::from_secs(3)) {
            Ok(s) if !s.is_empty() => return Ok(s),
            Ok(_) => last = Some(anyhow::anyhow!("{addr} answered nothing")),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}
