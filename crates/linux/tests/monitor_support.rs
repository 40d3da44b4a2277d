//! Helpers shared by the monitor_* tests (included with `#[path]`; as its own target it has
//! no tests): a busybox bundle on an overlay rootfs, a runtime on a temp run dir, leak
//! checks. Temp dirs and cgroups carry "berth" in their names.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_core::runtime::{CreateRequest, Rootfs, StdioConfig};
use berth_linux::containers::LinuxContainerRuntime;
use berth_linux::rootfs::OverlayRootfs;
use serde_json::{Value, json};

pub const EXE: &str = env!("CARGO_BIN_EXE_berth-monitor");

pub fn root() -> bool {
    let ok = nix::unistd::geteuid().is_root();
    if !ok {
        eprintln!("skipped: needs root");
    }
    ok
}

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub run_dir: PathBuf,
    pub layer: PathBuf,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("berth-test-monitor-{name}-"))
            .tempdir()
            .expect("tempdir");
        let run_dir = tmp.path().join("run");
        let layer = tmp.path().join("layer");
        let bin = layer.join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static");
        for app in [
            "sh", "echo", "cat", "sleep", "printf", "true", "head", "yes", "tr", "kill", "ls",
        ] {
            symlink("busybox", bin.join(app)).expect("symlink");
        }
        for d in ["proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(layer.join(d)).expect("mkdir");
        }
        Env {
            tmp,
            run_dir,
            layer,
        }
    }

    pub fn runtime(&self) -> LinuxContainerRuntime {
        LinuxContainerRuntime::new(self.run_dir.clone(), PathBuf::from(EXE))
    }

    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.tmp.path().join("bundles").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{id}.log"))
    }

    pub fn cgroups_path(id: &str) -> String {
        format!("/berth-test-monitor-{}-{id}", std::process::id())
    }

    /// Mounts the rootfs and writes config.json; returns the create request.
    pub async fn bundle(&self, pod: &str, id: &str, args: &[&str], tty: bool) -> CreateRequest {
        let dir = self.bundle_dir(id);
        std::fs::create_dir_all(&dir).expect("mkdir");
        OverlayRootfs::new()
            .mount(&dir, std::slice::from_ref(&self.layer), false)
            .await
            .expect("mount rootfs");
        let spec = config(args, tty, &Self::cgroups_path(id));
        std::fs::write(dir.join("config.json"), spec.to_string()).expect("config.json");
        CreateRequest {
            pod_id: pod.into(),
            container_id: id.into(),
            bundle: dir,
            handler: String::new(),
            stdio: StdioConfig {
                log_path: Some(self.log_path(id)),
                tty,
                stdin: false,
                stdin_once: false,
            },
        }
    }

    pub async fn remove_bundle(&self, id: &str) {
        OverlayRootfs::new()
            .remove(&self.bundle_dir(id))
            .await
            .expect("remove rootfs");
    }

    /// Nothing of the test is left: no process mentioning the temp dir, no mount below it.
    pub fn assert_clean(&self) {
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let procs = processes_mentioning(&tmp);
        assert!(procs.is_empty(), "processes left: {procs:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&tmp)).collect();
        assert!(left.is_empty(), "mounts left: {left:?}");
    }
}

pub fn config(args: &[&str], tty: bool, cgroups_path: &str) -> Value {
    let spec = oci_spec::runtime::Spec::default();
    let mut v = serde_json::to_value(&spec).expect("spec");
    v["root"] = json!({"path": "rootfs", "readonly": false});
    v["hostname"] = json!("berth-test");
    v["process"] = process(args, tty);
    v["linux"]["cgroupsPath"] = json!(cgroups_path);
    v
}

pub fn process(args: &[&str], tty: bool) -> Value {
    json!({
        "terminal": tty,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin", "TERM=xterm"],
        "cwd": "/",
        "noNewPrivileges": true
    })
}

/// Live processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// Exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start())
        .unwrap_or("");
    !(state.starts_with('Z') || state.starts_with('X'))
}

pub fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect(")") + 2..];
    rest.split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("ppid")
}

pub fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn monitor_dir(run_dir: &Path, pod: &str) -> PathBuf {
    run_dir.join("pods").join(pod).join("monitor")
}

pub fn monitor_pid(run_dir: &Path, pod: &str) -> i32 {
    let f = monitor_dir(run_dir, pod).join("monitor.pid");
    std::fs::read_to_string(f)
        .expect("monitor.pid")
        .trim()
        .parse()
        .expect("pid")
}

/// (stream, tag, content) of each record of a CRI log file.
pub fn log_records(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap_or_default();
            assert!(
                ts.len() == 30 && ts.ends_with('Z'),
                "timestamp {ts:?} in {l:?}"
            );
            let stream = it.next().unwrap_or_default().to_string();
            let tag = it.next().unwrap_or_default().to_string();
            (stream, tag, it.next().unwrap_or_default().to_string())
        })
        .collect()
}

pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}
