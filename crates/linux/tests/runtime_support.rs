//! Helpers shared by the runtime_* tests (included with `#[path]`; as its own target it
//! has no tests): a busybox rootfs, a default bundle, and a minimal monitor that speaks the
//! fd-3 protocol to `berth-test-init`. Everything carries "berth" in its name so
//! leakcheck sees leftovers.
#![allow(dead_code, unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use berth_linux::runtime::SyncMessage;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{Mount, Spec};

pub const INIT: &str = env!("CARGO_BIN_EXE_berth-test-init");

/// None (with a message) when the runtime tests cannot run here.
pub fn skip() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return true;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: needs /bin/busybox (busybox-static)");
        return true;
    }
    false
}

/// The container process gets reparented to the test process when the init's
/// intermediate parent exits, so the test process is a subreaper (it waits for every
/// container by PID; nothing else here orphans processes).
fn subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: integer-only prctl.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
    });
}

const APPLETS: &[&str] = &[
    "sh", "echo", "id", "cat", "touch", "hostname", "ls", "sleep", "env", "pwd", "grep", "unshare",
    "readlink", "head", "true", "false", "mkdir", "stat", "ps", "tty", "stty",
];

/// A bundle dir (named berth-rt-*) with a busybox rootfs and a unique cgroups path.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub cgroups_path: String,
    pub spec: Spec,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "data"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let id = format!(
            "berth-rt-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let mut spec = Spec::default();
        spec.set_hostname(Some("berth-rt".into()));
        let mut process = spec.process().clone().unwrap();
        process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        process.set_env(Some(vec!["PATH=/bin".into()]));
        spec.set_process(Some(process));
        let mut linux = spec.linux().clone().unwrap();
        linux.set_cgroups_path(Some(PathBuf::from(&id)));
        spec.set_linux(Some(linux));
        Bundle {
            dir,
            cgroups_path: id.clone(),
            id,
            spec,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn process<R>(&mut self, f: impl FnOnce(&mut oci_spec::runtime::Process) -> R) {
        let mut p = self.spec.process().clone().unwrap();
        f(&mut p);
        self.spec.set_process(Some(p));
    }

    pub fn linux<R>(&mut self, f: impl FnOnce(&mut oci_spec::runtime::Linux) -> R) {
        let mut l = self.spec.linux().clone().unwrap();
        f(&mut l);
        self.spec.set_linux(Some(l));
    }

    pub fn add_mount(&mut self, dst: &str, typ: &str, src: &str, options: &[&str]) {
        let mut m = Mount::default();
        m.set_destination(dst.into());
        m.set_typ(Some(typ.into()));
        m.set_source(Some(src.into()));
        m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
        let mut ms = self.spec.mounts().clone().unwrap_or_default();
        ms.push(m);
        self.spec.set_mounts(Some(ms));
    }

    pub fn write(&self) {
        let text = serde_json::to_vec_pretty(&self.spec).unwrap();
        std::fs::write(self.path().join("config.json"), text).unwrap();
    }

    /// Runs the init up to `ready` (or its error).
    pub fn create(&self) -> Result<Container, String> {
        self.write();
        let tty = self
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let args = [
            "init",
            "--bundle",
            self.path().to_str().unwrap(),
            "--id",
            &self.id,
        ];
        spawn_with(&args, true, tty).map(|mut c| {
            c.cgroups_path = Some(self.cgroups_path.clone());
            c
        })
    }

    /// create + start + wait: (exit code, stdout, stderr).
    pub fn run(&self) -> (i32, String, String) {
        let mut c = self
            .create()
            .unwrap_or_else(|e| panic!("create failed: {e}"));
        c.start().unwrap_or_else(|e| panic!("start failed: {e}"));
        c.wait()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = berth_linux::runtime::remove_cgroup(&self.cgroups_path);
    }
}

/// A container process under the test's watch.
pub struct Container {
    sock: UnixStream,
    pub pid: i32,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    pub cgroups_path: Option<String>,
    waited: bool,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        // A pty master reports EIO once the last slave closes: the end, like EOF.
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    })
}

fn recv(sock: &UnixStream) -> Option<SyncMessage> {
    recv_fd(sock, &mut Vec::new())
}

/// One sync message, read a byte at a time with recvmsg so a descriptor sent with it
/// (the console's pty master) lands in `fds`.
fn recv_fd(sock: &UnixStream, fds: &mut Vec<OwnedFd>) -> Option<SyncMessage> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut line = Vec::new();
    loop {
        let mut b = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut b)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: fresh descriptors from SCM_RIGHTS.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if msg.bytes == 0 {
            return None;
        }
        if b[0] != b'\n' {
            line.push(b[0]);
            continue;
        }
        match SyncMessage::from_line(&String::from_utf8_lossy(&line)).unwrap() {
            // Notes for the monitor's log may come at any time; kept for the tests.
            SyncMessage::Warning { message } => {
                warnings().push(message);
                line.clear();
            }
            m => return Some(m),
        }
    }
}

/// The warnings inits of this test process sent over their sync sockets so far.
pub fn warnings() -> std::sync::MutexGuard<'static, Vec<String>> {
    static W: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    W.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `berth-test-init <args>` with fd 3 = sync socket and piped stdio; reads `pid`
/// and, when `until_ready`, `ready`.
pub fn spawn(args: &[&str], until_ready: bool) -> Result<Container, String> {
    spawn_with(args, until_ready, false)
}

/// [`spawn`] of a process with a terminal when `tty`: the init makes it in the container
/// and sends its master back (the output is read from it).
pub fn spawn_with(args: &[&str], until_ready: bool, tty: bool) -> Result<Container, String> {
    subreaper();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs_fd: OwnedFd = theirs.into();
    let raw = theirs_fd.as_raw_fd();
    let mut cmd = Command::new(INIT);
    cmd.args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; raw stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(theirs_fd);
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let first = recv(&ours);
    let status = child.wait().unwrap();
    let mut c = Container {
        sock: ours,
        pid: 0,
        out: Some(out),
        err: Some(err),
        cgroups_path: None,
        waited: false,
    };
    match first {
        Some(SyncMessage::Pid { pid }) => {
            assert!(status.success(), "intermediate init exited with {status}");
            c.pid = pid;
        }
        Some(SyncMessage::Error { message }) => {
            c.waited = true;
            return Err(message);
        }
        other => {
            c.waited = true;
            let (_, _, e) = c.collect();
            return Err(format!(
                "unexpected {other:?} (status {status}, stderr {e})"
            ));
        }
    }
    if tty {
        let mut fds = Vec::new();
        match recv_fd(&c.sock, &mut fds) {
            Some(SyncMessage::Console) if fds.len() == 1 => {
                // The pipe's reader ends once the process took the pty as its stdout.
                let _ = c.out.take().map(|h| h.join());
                c.out = Some(reader(std::fs::File::from(fds.remove(0))));
            }
            Some(SyncMessage::Error { message }) => {
                c.wait();
                return Err(message);
            }
            other => {
                let (code, _, e) = c.wait();
                return Err(format!(
                    "unexpected {other:?} with {} fds (exit {code}, stderr {e})",
                    fds.len()
                ));
            }
        }
    }
    if until_ready {
        match recv(&c.sock) {
            Some(SyncMessage::Ready) => {}
            Some(SyncMessage::Error { message }) => {
                c.wait();
                return Err(message);
            }
            other => {
                let (code, _, e) = c.wait();
                return Err(format!("unexpected {other:?} (exit {code}, stderr {e})"));
            }
        }
    }
    Ok(c)
}

impl Container {
    /// Sends start; Ok once the sync socket closes (exec succeeded).
    pub fn start(&mut self) -> Result<(), String> {
        use std::io::Write;
        (&self.sock)
            .write_all(SyncMessage::Start.to_line().as_bytes())
            .unwrap();
        self.exec_result()
    }

    /// EOF on the socket: the program runs; an error message: it did not.
    pub fn exec_result(&mut self) -> Result<(), String> {
        match recv(&self.sock) {
            None => Ok(()),
            Some(SyncMessage::Error { message }) => Err(message),
            Some(other) => Err(format!("unexpected {other:?}")),
        }
    }

    fn collect(&mut self) -> (i32, String, String) {
        let out = self
            .out
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        let err = self
            .err
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        (-1, out, err)
    }

    /// Waits for the container process: (exit code or 128+signal, stdout, stderr).
    pub fn wait(&mut self) -> (i32, String, String) {
        let code = if self.waited {
            -1
        } else {
            self.waited = true;
            match waitpid(Pid::from_raw(self.pid), None).unwrap() {
                WaitStatus::Exited(_, c) => c,
                WaitStatus::Signaled(_, s, _) => 128 + s as i32,
                other => panic!("unexpected wait status {other:?}"),
            }
        };
        let (_, out, err) = self.collect();
        (code, out, err)
    }

    pub fn kill(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
        self.wait();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.waited && self.pid > 0 {
            self.kill();
        }
    }
}

/// A host directory (named berth-rt-*) to bind into containers.
pub fn host_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-rt-host-")
        .tempdir()
        .unwrap()
}
