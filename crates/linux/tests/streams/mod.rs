//! Helpers of the streaming tests (monitor_streams, monitor_attach: `mod streams;`, next
//! to `support`): session fds read on threads, containers started and cleaned up.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::runtime::ContainerRuntime;
use berth_core::stream::{AttachRequest, ExecStreamRequest, StdioSession};
use berth_linux::cgroup::{DEFAULT_ROOT, LinuxCgroups};
use berth_linux::containers::LinuxContainerRuntime;

use crate::support::*;

pub const WAIT: Duration = Duration::from_secs(20);

/// A session fd as a blocking file (the session hands them out non-blocking).
pub fn blocking(fd: OwnedFd) -> std::fs::File {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_SETFL(flags)).unwrap();
    fd.into()
}

/// Collects what a session's output gives, on a thread, until EOF (or EIO: a pty).
pub struct Collector {
    data: Arc<Mutex<Vec<u8>>>,
    done: Arc<Mutex<bool>>,
}

impl Collector {
    pub fn new(fd: OwnedFd) -> Self {
        let data = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(Mutex::new(false));
        let (d, e) = (data.clone(), done.clone());
        let mut f = blocking(fd);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                d.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            *e.lock().unwrap() = true;
        });
        Collector { data, done }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.lock().unwrap()).into_owned()
    }

    pub async fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in output {:?}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// All of it, once the stream ended.
    pub async fn finish(&self) -> String {
        let deadline = Instant::now() + WAIT;
        while !*self.done.lock().unwrap() {
            assert!(Instant::now() < deadline, "no EOF; got {:?}", self.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.text()
    }
}

/// Asks the shell on the other end of a tty session which terminal it has, and checks it
/// is the container's own: `tty` names a /dev/pts/N that exists in the container and that
/// fd 0 points at. With `console`, /dev/console must be that terminal too (the main
/// process'). Returns the terminal's name.
pub async fn check_own_terminal(
    out: &Collector,
    stdin: &mut std::fs::File,
    console: bool,
) -> String {
    use std::io::Write;
    // "T""=", E""ND: the echoed input never contains the markers themselves.
    let script = "t=$(busybox tty); echo \"T\"\"=$t F=$(busybox readlink /proc/self/fd/0) \
         E=$([ -c $t ] && echo y) D=$(busybox stat -c %t:%T $t) \
         C=$(busybox stat -c %t:%T /dev/console 2>/dev/null) E\"\"ND\"\n";
    stdin.write_all(script.as_bytes()).unwrap();
    out.wait_for(" END").await;
    let text = out.text();
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("T=") && l.contains(" END"))
        .unwrap_or_else(|| panic!("no answer in {text:?}"))
        .trim_end_matches('\r')
        .to_string();
    let val = |key: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or("")
            .to_string()
    };
    let tty = val("T=");
    assert!(tty.starts_with("/dev/pts/"), "tty: {line:?}");
    assert_eq!(val("F="), tty, "fd 0 is the terminal: {line:?}");
    assert_eq!(val("E="), "y", "{tty} exists in the container: {line:?}");
    if console {
        assert_eq!(val("C="), val("D="), "/dev/console is {tty}: {line:?}");
    }
    tty
}

pub fn exec_req(id: &str, args: &[&str], tty: bool, io: [bool; 3]) -> ExecStreamRequest {
    ExecStreamRequest {
        container_id: id.into(),
        process: process(args, tty),
        tty,
        stdin: io[0],
        stdout: io[1],
        stderr: io[2],
    }
}

pub async fn exit_of(session: StdioSession) -> i32 {
    tokio::time::timeout(WAIT, session.exit)
        .await
        .expect("exit in time")
        .expect("exit code")
}

/// Starts a running container `id` in `pod`.
pub async fn running(
    env: &Env,
    rt: &LinuxContainerRuntime,
    pod: &str,
    id: &str,
    args: &[&str],
    tty: bool,
    stdin: bool,
) {
    let mut req = env.bundle(pod, id, args, tty).await;
    req.stdio.stdin = stdin;
    req.stdio.stdin_once = stdin;
    rt.create(&req).await.expect("create");
    rt.start(pod, id).await.expect("start");
}

/// Kills, deletes, releases the pod, unmounts; then checks nothing is left.
pub async fn finish(env: &Env, rt: &LinuxContainerRuntime, pod: &str, ids: &[&str]) {
    for id in ids {
        rt.kill(pod, id, libc::SIGKILL, true).await.expect("kill");
        rt.wait(pod, id, WAIT).await.expect("wait");
        rt.delete(pod, id).await.expect("delete");
    }
    rt.release_pod(pod).await.expect("release");
    for id in ids {
        env.remove_bundle(id).await;
        assert!(cgroup_procs(id).is_empty(), "cgroup of {id} left");
    }
    env.assert_clean();
}

/// PIDs in the container's cgroup (any hierarchy).
pub fn cgroup_procs(id: &str) -> Vec<i32> {
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    let mut out: Vec<i32> = Vec::new();
    for dir in cg.dirs(&Env::cgroups_path(id)).unwrap() {
        let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    out.sort();
    out.dedup();
    out
}

/// Live (not zombie) children of `pid`, and zombies among them.
pub fn children(pid: i32) -> (Vec<i32>, usize) {
    let mut kids = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        kids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    let zombies = kids.iter().filter(|k| !alive(**k)).count();
    (kids, zombies)
}

pub fn exec_files(env: &Env, pod: &str, id: &str) -> Vec<String> {
    let dir = monitor_dir(&env.run_dir, pod).join("containers").join(id);
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect()
}

pub fn attach_req(id: &str, tty: bool, io: [bool; 3]) -> AttachRequest {
    AttachRequest {
        container_id: id.into(),
        tty,
        stdin: io[0],
        stdout: io[1],
        stderr: io[2],
    }
}
