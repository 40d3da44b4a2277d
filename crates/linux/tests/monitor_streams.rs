//! Streamed exec, attach and port-forward for real: busybox containers under the pod
//! monitor, sessions read and written like the streaming server does (on threads here),
//! and nothing left behind: no process, no exec file, no netns. Needs root; skips
//! otherwise (runc parts skip without /usr/bin/runc).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "monitor_support.rs"]
mod support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::runtime::{ContainerRuntime, ExecRequest, RuntimeError};
use berth_core::stream::{AttachRequest, ExecStreamRequest, StdioSession};
use berth_linux::cgroup::{DEFAULT_ROOT, LinuxCgroups};
use berth_linux::containers::LinuxContainerRuntime;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A session fd as a blocking file (the session hands them out non-blocking).
fn blocking(fd: OwnedFd) -> std::fs::File {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_SETFL(flags)).unwrap();
    fd.into()
}

/// Collects what a session's output gives, on a thread, until EOF (or EIO: a pty).
struct Collector {
    data: Arc<Mutex<Vec<u8>>>,
    done: Arc<Mutex<bool>>,
}

impl Collector {
    fn new(fd: OwnedFd) -> Self {
        let data = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(Mutex::new(false));
        let (d, e) = (data.clone(), done.clone());
        let mut f = blocking(fd);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
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

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.lock().unwrap()).into_owned()
    }

    async fn wait_for(&self, what: &str) {
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
    async fn finish(&self) -> String {
        let deadline = Instant::now() + WAIT;
        while !*self.done.lock().unwrap() {
            assert!(Instant::now() < deadline, "no EOF; got {:?}", self.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.text()
    }
}

fn exec_req(id: &str, args: &[&str], tty: bool, io: [bool; 3]) -> ExecStreamRequest {
    ExecStreamRequest {
        container_id: id.into(),
        process: process(args, tty),
        tty,
        stdin: io[0],
        stdout: io[1],
        stderr: io[2],
    }
}

async fn exit_of(session: StdioSession) -> i32 {
    tokio::time::timeout(WAIT, session.exit)
        .await
        .expect("exit in time")
        .expect("exit code")
}

/// Starts a running container `id` in `pod`.
async fn running(
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
async fn finish(env: &Env, rt: &LinuxContainerRuntime, pod: &str, ids: &[&str]) {
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
fn cgroup_procs(id: &str) -> Vec<i32> {
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
fn children(pid: i32) -> (Vec<i32>, usize) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_tty() {
    if !root() {
        return;
    }
    let env = Env::new("sexec");
    let rt = env.runtime();
    let pod = "pod-se";
    running(&env, &rt, pod, "se1", &["sleep", "1000"], false, false).await;

    // stdin piped to cat, echoed on stdout; closing stdin ends it.
    let mut s = rt
        .exec_stream(pod, &exec_req("se1", &["cat"], false, [true, true, false]))
        .await
        .expect("exec cat");
    assert!(s.stderr.is_none() && s.resize.is_none());
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    stdin.write_all(b"hello berth\n").unwrap();
    out.wait_for("hello berth\n").await;
    drop(stdin);
    assert_eq!(exit_of(s).await, 0);
    assert_eq!(out.finish().await, "hello berth\n");

    // Separate stdout and stderr, exit code.
    let script = "echo out; echo err >&2; exit 3";
    let mut s = rt
        .exec_stream(
            pod,
            &exec_req("se1", &["sh", "-c", script], false, [false, true, true]),
        )
        .await
        .expect("exec script");
    assert!(s.stdin.is_none());
    let out = Collector::new(s.stdout.take().unwrap());
    let err = Collector::new(s.stderr.take().unwrap());
    assert_eq!(exit_of(s).await, 3);
    assert_eq!(out.finish().await, "out\n");
    assert_eq!(err.finish().await, "err\n");

    // A program that does not exist: an error, not a session.
    let r = rt
        .exec_stream(
            pod,
            &exec_req("se1", &["/no/such"], false, [false, true, true]),
        )
        .await;
    assert!(r.is_err(), "missing program: {r:?}");
    // tty with stderr is refused; unknown container is NotFound.
    let r = rt
        .exec_stream(pod, &exec_req("se1", &["sh"], true, [true, true, true]))
        .await;
    assert!(matches!(r, Err(RuntimeError::InvalidArgument(_))), "{r:?}");
    let r = rt
        .exec_stream(pod, &exec_req("nope", &["sh"], false, [false, true, false]))
        .await;
    assert!(matches!(r, Err(RuntimeError::NotFound(_))), "{r:?}");

    let files = exec_files(&env, pod, "se1");
    assert!(files.is_empty(), "exec files left: {files:?}");
    finish(&env, &rt, pod, &["se1"]).await;
}

fn exec_files(env: &Env, pod: &str, id: &str) -> Vec<String> {
    let dir = monitor_dir(&env.run_dir, pod).join("containers").join(id);
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_tty() {
    if !root() {
        return;
    }
    let env = Env::new("stty");
    let rt = env.runtime();
    let pod = "pod-st";
    running(&env, &rt, pod, "st1", &["sleep", "1000"], false, false).await;

    let mut s = rt
        .exec_stream(pod, &exec_req("st1", &["sh"], true, [true, true, false]))
        .await
        .expect("exec sh");
    assert!(s.stderr.is_none());
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    out.wait_for("# ").await;
    s.resize
        .as_ref()
        .unwrap()
        .resize(123, 45)
        .await
        .expect("resize");
    stdin
        .write_all(b"busybox stty size; [ -t 0 ] && echo is-a-tty\n")
        .unwrap();
    out.wait_for("45 123").await;
    out.wait_for("\nis-a-tty").await;
    // The terminal is the shell's controlling one: ^C interrupts its foreground job.
    stdin.write_all(b"sleep 100\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stdin.write_all(b"\x03echo after-int\n").unwrap();
    out.wait_for("\nafter-int").await;
    stdin.write_all(b"exit 5\n").unwrap();
    assert_eq!(exit_of(s).await, 5);
    out.finish().await;
    drop(stdin);
    finish(&env, &rt, pod, &["st1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_exec_is_killed() {
    if !root() {
        return;
    }
    let env = Env::new("sdrop");
    let rt = env.runtime();
    let pod = "pod-sd";
    running(&env, &rt, pod, "sd1", &["sleep", "1000"], false, false).await;
    let before = cgroup_procs("sd1");
    assert_eq!(before.len(), 1, "{before:?}");
    let mpid = monitor_pid(&env.run_dir, pod);

    for tty in [false, true] {
        let s = rt
            .exec_stream(
                pod,
                &exec_req("sd1", &["sleep", "1000"], tty, [true, true, false]),
            )
            .await
            .expect("exec sleep");
        eventually("the exec in the cgroup", || cgroup_procs("sd1").len() == 2).await;
        drop(s);
        eventually("the exec killed", || cgroup_procs("sd1") == before).await;
        eventually("the exec reaped", || children(mpid) == (before.clone(), 0)).await;
        let files = exec_files(&env, pod, "sd1");
        assert!(files.is_empty(), "exec files left: {files:?}");
    }
    // The monitor keeps serving.
    let r = rt
        .exec_sync(
            pod,
            &ExecRequest {
                container_id: "sd1".into(),
                process: process(&["echo", "still here"], false),
                timeout: Some(WAIT),
                max_output: 1 << 20,
            },
        )
        .await
        .expect("exec_sync");
    assert_eq!(r.stdout, b"still here\n");
    let fds = std::fs::read_dir(format!("/proc/{mpid}/fd"))
        .unwrap()
        .count();
    assert!(fds < 16, "the monitor holds {fds} fds");
    finish(&env, &rt, pod, &["sd1"]).await;
}

fn attach_req(id: &str, tty: bool, io: [bool; 3]) -> AttachRequest {
    AttachRequest {
        container_id: id.into(),
        tty,
        stdin: io[0],
        stdout: io[1],
        stderr: io[2],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_output_and_stdin_once() {
    if !root() {
        return;
    }
    let env = Env::new("attach");
    let rt = env.runtime();
    let pod = "pod-at";
    let ticker = "i=0; while true; do echo line$i; echo eline$i >&2; i=$((i+1)); sleep 0.1; done";
    running(&env, &rt, pod, "tick", &["sh", "-c", ticker], false, false).await;

    // Two attachers both see the output; one of them stderr too.
    let mut a = rt
        .attach(pod, &attach_req("tick", false, [false, true, true]))
        .await
        .expect("attach a");
    let mut b = rt
        .attach(pod, &attach_req("tick", false, [false, true, false]))
        .await
        .expect("attach b");
    assert!(b.stderr.is_none() && b.stdin.is_none() && b.resize.is_none());
    let (a_out, a_err) = (
        Collector::new(a.stdout.take().unwrap()),
        Collector::new(a.stderr.take().unwrap()),
    );
    let b_out = Collector::new(b.stdout.take().unwrap());
    a_out.wait_for("line").await;
    a_err.wait_for("eline").await;
    b_out.wait_for("line").await;
    assert!(!a_out.text().contains("eline"), "stderr on stdout");
    // A detached attacher does not disturb the other one.
    drop(a);
    let seen = b_out.text().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b_out.text().len() > seen, "b stopped receiving");
    // stdin is refused: the container was not created with it.
    let r = rt
        .attach(pod, &attach_req("tick", false, [true, true, false]))
        .await;
    assert!(
        matches!(&r, Err(RuntimeError::FailedPrecondition { message, .. }) if message.contains("stdin")),
        "{r:?}"
    );
    rt.kill(pod, "tick", libc::SIGKILL, false).await.unwrap();
    assert_eq!(exit_of(b).await, 137);
    b_out.finish().await;
    let r = rt
        .attach(pod, &attach_req("tick", false, [false, true, false]))
        .await;
    assert!(
        matches!(r, Err(RuntimeError::FailedPrecondition { .. })),
        "attach to exited: {r:?}"
    );

    // stdin + stdin_once: input echoed, closing it ends the container.
    running(&env, &rt, pod, "cat", &["cat"], false, true).await;
    let mut s = rt
        .attach(pod, &attach_req("cat", false, [true, true, true]))
        .await
        .expect("attach cat");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    stdin.write_all(b"ping\n").unwrap();
    out.wait_for("ping\n").await;
    drop(stdin);
    assert_eq!(exit_of(s).await, 0);
    assert_eq!(out.finish().await, "ping\n");
    let logged = log_records(&env.log_path("cat"));
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0].0.as_str(), logged[0].2.as_str()),
        ("stdout", "ping")
    );
    finish(&env, &rt, pod, &["tick", "cat"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_tty_resize() {
    if !root() {
        return;
    }
    let env = Env::new("attty");
    let rt = env.runtime();
    let pod = "pod-tt";
    let mut req = env.bundle(pod, "t", &["sh"], true).await;
    req.stdio.stdin = true;
    rt.create(&req).await.expect("create");
    rt.start(pod, "t").await.expect("start");
    let mut s = rt
        .attach(pod, &attach_req("t", true, [true, true, true]))
        .await
        .expect("attach");
    assert!(s.stderr.is_none(), "a tty has no stderr");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    s.resize
        .as_ref()
        .unwrap()
        .resize(77, 22)
        .await
        .expect("resize");
    stdin.write_all(b"busybox stty size\n").unwrap();
    out.wait_for("22 77").await;
    stdin.write_all(b"exit 4\n").unwrap();
    assert_eq!(exit_of(s).await, 4);
    out.finish().await;
    drop(stdin);
    let r = rt
        .attach(pod, &attach_req("t", true, [false, true, false]))
        .await;
    assert!(
        matches!(r, Err(RuntimeError::FailedPrecondition { .. })),
        "{r:?}"
    );
    finish(&env, &rt, pod, &["t"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stream_with_runc() {
    const RUNC: &str = "/usr/bin/runc";
    if !root() || !std::path::Path::new(RUNC).exists() {
        return;
    }
    let env = Env::new("srunc");
    let rt = env
        .runtime()
        .with_oci_runtimes([("runc".to_string(), RUNC.into())].into());
    let pod = "pod-sr";
    let mut req = env.bundle(pod, "sr1", &["sleep", "1000"], false).await;
    req.handler = "runc".into();
    rt.create(&req).await.expect("create");
    rt.start(pod, "sr1").await.expect("start");
    let mut s = rt
        .exec_stream(
            pod,
            &exec_req(
                "sr1",
                &["sh", "-c", "read x; echo got $x; exit 6"],
                false,
                [true, true, false],
            ),
        )
        .await
        .expect("runc exec");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    stdin.write_all(b"it\n").unwrap();
    drop(stdin);
    assert_eq!(exit_of(s).await, 6);
    assert_eq!(out.finish().await, "got it\n");
    // A tty: runc makes the pty inside the container and berthd's session gets its master.
    let mut s = rt
        .exec_stream(pod, &exec_req("sr1", &["sh"], true, [true, true, false]))
        .await
        .expect("runc tty exec");
    let out = Collector::new(s.stdout.take().unwrap());
    let mut stdin = blocking(s.stdin.take().unwrap());
    s.resize
        .as_ref()
        .unwrap()
        .resize(66, 11)
        .await
        .expect("resize");
    stdin
        .write_all(b"busybox stty size; busybox tty; exit 8\n")
        .unwrap();
    assert_eq!(exit_of(s).await, 8);
    let text = out.finish().await;
    assert!(
        text.contains("11 66") && text.contains("/dev/pts/"),
        "{text:?}"
    );
    drop(stdin);
    let files = exec_files(&env, pod, "sr1");
    assert!(files.is_empty(), "exec files left: {files:?}");
    let consoles: Vec<_> = std::fs::read_dir(monitor_dir(&env.run_dir, pod))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        .map(|e| e.file_name())
        .collect();
    assert_eq!(consoles.len(), 1, "console sockets left: {consoles:?}");
    finish(&env, &rt, pod, &["sr1"]).await;
}
