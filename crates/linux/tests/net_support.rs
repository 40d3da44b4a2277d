//! Helpers shared by the net_* tests (included with `#[path]`; as its own target it has
//! no tests). Everything created here carries "berth" in its name or starts with "bth",
//! so leakcheck sees it if a test leaves it behind.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tests share host state (sysctls, nft, leakcheck's view): one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// None (with a message) when the test cannot run here.
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    tools
        .iter()
        .find(|t| !have(t))
        .map(|t| format!("needs {t}"))
}

pub fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A network namespace standing in for a pod (`ip netns add`), deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(name: &str) -> Self {
        let name = format!("berth-test-net-{name}");
        let _ = sh(&format!("ip netns del {name} 2>/dev/null"));
        let (ok, out) = sh(&format!("ip netns add {name}"));
        assert!(ok, "ip netns add {name}: {out}");
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    pub fn exec(&self, cmd: &str) -> (bool, String) {
        sh(&format!("ip netns exec {} {cmd}", self.name))
    }

    pub fn ping(&self, ip: &str) -> bool {
        let flag = if ip.contains(':') { "ping -6" } else { "ping" };
        self.exec(&format!("busybox {flag} -c1 -W2 {ip}")).0
    }

    /// GET / from inside the namespace (busybox nc; busybox wget crashes here): the reply.
    pub fn http_get(&self, ip: &str, port: u16) -> String {
        sh(&format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ip netns exec {} busybox nc -w 2 {ip} {port}",
            self.name
        ))
        .1
    }

    /// An HTTP server on `port` inside the namespace whose page is `marker`.
    pub fn serve(&self, port: u16, marker: &str, dir: &Path) -> Server {
        std::fs::write(dir.join("index.html"), marker).expect("write page");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "busybox",
                "httpd",
                "-f",
                "-p",
                &port.to_string(),
                "-h",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start httpd");
        let server = Server { child };
        // Wait until it listens (from inside the namespace).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.http_get("127.0.0.1", port).contains(marker) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("httpd in {} did not start", self.name);
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

pub struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET / from `addr` (from the calling thread's network namespace): the body, or None.
pub fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Removes what a test's network may have left when it fails half-way (so one failure
/// does not fail the next tests' leak checks too).
pub struct NetCleanup(pub &'static str);

impl Drop for NetCleanup {
    fn drop(&mut self) {
        let b = self.0;
        sh(&format!(
            "ip link del {b} 2>/dev/null; nft delete table inet berth-{b} 2>/dev/null; \
             ip link del berthdummy0 2>/dev/null; \
             for l in $(ip -o link show | awk -F': ' '{{print $2}}' | grep '^bthbe' | cut -d@ -f1); do ip link del $l; done"
        ));
    }
}

/// leakcheck.sh's findings that are ours (other helpers' tests may run at the same time).
pub fn leaks() -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/leakcheck.sh");
    let script = if script.exists() {
        script
    } else {
        PathBuf::from("/work/shared/tools/leakcheck.sh")
    };
    let (_, out) = sh(&script.display().to_string());
    out.lines()
        .filter(|l| l.starts_with("leak:"))
        .filter(|l| {
            [
                "berthtest",
                "berthdummy",
                "berth-test-net",
                ": bthbe",
                ": bthn",
                ": bthv",
                "berthcni",
            ]
            .iter()
            .any(|p| l.contains(p))
        })
        .map(str::to_string)
        .collect()
}

pub fn assert_no_leaks() {
    let l = leaks();
    assert!(l.is_empty(), "leftovers:\n{}", l.join("\n"));
}

/// Restores a /proc/sys value on drop (tests leave the host's sysctls as they found them).
pub struct SysctlGuard(Vec<(String, String)>);

impl SysctlGuard {
    pub fn save(paths: &[&str]) -> Self {
        Self(
            paths
                .iter()
                .filter_map(|p| std::fs::read_to_string(p).ok().map(|v| (p.to_string(), v)))
                .collect(),
        )
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        for (p, v) in &self.0 {
            let _ = std::fs::write(p, v.trim());
        }
    }
}
