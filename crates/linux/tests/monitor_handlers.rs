//! CRI runtime handlers through the pod monitor: the same busybox containers run once with
//! berth's own runtime and once with Debian's runc (crun too where it works: on cgroup v2,
//! e.g. in the VM lane), and must look and behave the same: output, exit codes, exec, tty,
//! update, kill; nothing may be left behind. Needs root; runc/crun parts skip without
//! their binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "monitor_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_core::runtime::{ContainerRuntime, CreateRequest, ExecRequest, ProcessStatus};
use berth_linux::cgroup::{CgroupMode, DEFAULT_ROOT, LinuxCgroups};
use berth_linux::containers::LinuxContainerRuntime;
use support::*;

const RUNC: &str = "/usr/bin/runc";
const CRUN: &str = "/usr/bin/crun";
const SCRIPT: &str =
    "id; hostname; cat /proc/self/status | grep -E 'Cap(Eff|Bnd)'; echo $FOO; exit 7";
const WAIT: Duration = Duration::from_secs(20);

/// What a handler's run showed, compared across handlers.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    script_out: Vec<String>,
    script_code: Option<i32>,
    exec: (Vec<u8>, Vec<u8>, i32),
    exec_missing_fails: bool,
    term_code: Option<i32>,
    kill_code: Option<i32>,
    tty_out: Vec<String>,
    memory_limit: String,
}

/// containerd's default capability set, as the CRI layer puts it in every process (berth's
/// runtime keeps all capabilities when a spec has none, runc drops all: specs name them).
fn with_caps(mut process: serde_json::Value, foo_value: &str) -> serde_json::Value {
    let caps: Vec<String> = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ]
    .iter()
    .map(|c| format!("CAP_{c}"))
    .collect();
    process["capabilities"] = serde_json::json!({
        "bounding": caps, "effective": caps, "permitted": caps
    });
    process["env"]
        .as_array_mut()
        .unwrap()
        .push(format!("FOO={foo_value}").into());
    process
}

fn runtimes() -> BTreeMap<String, PathBuf> {
    BTreeMap::from([("runc".into(), RUNC.into()), ("crun".into(), CRUN.into())])
}

fn runtime(env: &Env) -> LinuxContainerRuntime {
    env.runtime().with_oci_runtimes(runtimes())
}

/// A bundle as the support module makes it, with `FOO` set and the given handler.
async fn bundle(
    env: &Env,
    pod: &str,
    id: &str,
    args: &[&str],
    tty: bool,
    h: &str,
) -> CreateRequest {
    let mut req = env.bundle(pod, id, args, tty).await;
    req.handler = h.to_string();
    let file = req.bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    spec["process"] = with_caps(spec["process"].take(), "berth-foo");
    std::fs::write(&file, spec.to_string()).unwrap();
    req
}

fn stdout_lines(path: &Path) -> Vec<String> {
    log_records(path)
        .into_iter()
        .filter(|r| r.0 == "stdout")
        .map(|r| r.2.trim_end_matches('\r').to_string())
        .collect()
}

/// The container's memory limit as its cgroup shows it.
fn memory_limit(id: &str) -> String {
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    for dir in cg.dirs(&Env::cgroups_path(id)).unwrap() {
        for f in ["memory.max", "memory.limit_in_bytes"] {
            if let Ok(v) = std::fs::read_to_string(dir.join(f)) {
                return v.trim().to_string();
            }
        }
    }
    panic!("no memory cgroup for {id}");
}

fn cgroup_gone(id: &str) -> bool {
    let cg = LinuxCgroups::new(DEFAULT_ROOT).unwrap();
    cg.dirs(&Env::cgroups_path(id))
        .unwrap()
        .iter()
        .all(|d| !d.exists())
}

/// `<runtime> --root <its root in the pod's monitor dir> args...`: stdout.
fn oci(h: &str, env: &Env, pod: &str, args: &[&str]) -> String {
    let root = monitor_dir(&env.run_dir, pod).join(format!("{h}-root"));
    let out = std::process::Command::new(&runtimes()[h])
        .arg("--root")
        .arg(&root)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{h} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the whole scenario with handler `h` ("" is berth's own runtime).
async fn run(h: &str) -> Outcome {
    let name = if h.is_empty() { "berth" } else { h };
    let env = Env::new(&format!("handler-{name}"));
    for app in ["id", "hostname", "grep", "tty"] {
        symlink("busybox", env.layer.join("bin").join(app)).unwrap();
    }
    let rt = runtime(&env);
    let pod = format!("pod-{name}");
    let pod = pod.as_str();
    let ids = ["script", "svc", "stubborn", "tty", "idle", "bad", "left"];

    // 1. A script: its output and exit code; the monitor is the process's parent.
    let req = bundle(&env, pod, "script", &["sh", "-c", SCRIPT], false, h).await;
    let created = rt.create(&req).await.expect("create");
    assert_eq!(created.status, ProcessStatus::Created);
    let mpid = monitor_pid(&env.run_dir, pod);
    assert_eq!(
        parent_of(created.pid.unwrap()),
        mpid,
        "{name}: monitor is the parent"
    );
    if !h.is_empty() {
        // The handler's runtime made it, and knows it.
        let state = oci(h, &env, pod, &["state", "script"]);
        assert!(state.contains("\"created\""), "{name} state: {state}");
    }
    rt.start(pod, "script").await.expect("start");
    let done = rt.wait(pod, "script", WAIT).await.unwrap();
    assert_eq!(done.status, ProcessStatus::Exited, "{name}");
    assert!(done.started_at.is_some());
    let script_out = stdout_lines(&env.log_path("script"));

    // 2. A service: exec (output, exit code, missing program), update, SIGTERM.
    let svc = "trap 'exit 42' TERM; echo up; while true; do sleep 0.1; done";
    let req = bundle(&env, pod, "svc", &["sh", "-c", svc], false, h).await;
    rt.create(&req).await.expect("create svc");
    let st = rt.start(pod, "svc").await.expect("start svc");
    assert_eq!(st.status, ProcessStatus::Running, "{name}");
    let exec = |args: &[&str]| ExecRequest {
        container_id: "svc".into(),
        process: with_caps(process(args, false), "exec-foo"),
        timeout: Some(Duration::from_secs(20)),
        max_output: 1 << 20,
        drain: Duration::from_secs(2),
    };
    let r = rt
        .exec_sync(
            pod,
            &exec(&[
                "sh",
                "-c",
                "echo exec $FOO; id -u; grep CapEff /proc/self/status; echo err >&2; exit 3",
            ]),
        )
        .await
        .expect("exec");
    let exec_out = (r.stdout, r.stderr, r.exit_code);
    let missing = rt.exec_sync(pod, &exec(&["/no/such/program"])).await;
    let exec_missing_fails = match &missing {
        Err(_) => true,
        Ok(o) => o.exit_code != 0,
    };
    let resources = serde_json::json!({"memory": {"limit": 64 << 20}});
    rt.update(pod, "svc", &resources).await.expect("update");
    let memory_limit = memory_limit("svc");
    eventually("svc output", || {
        !stdout_lines(&env.log_path("svc")).is_empty()
    })
    .await;
    rt.kill(pod, "svc", libc::SIGTERM, false)
        .await
        .expect("kill");
    let term_code = rt.wait(pod, "svc", WAIT).await.unwrap().exit_code;

    // 3. A process that ignores SIGTERM: SIGKILL to all.
    let req = bundle(
        &env,
        pod,
        "stubborn",
        &["sh", "-c", "trap '' TERM; sleep 1000 & wait"],
        false,
        h,
    )
    .await;
    rt.create(&req).await.expect("create stubborn");
    rt.start(pod, "stubborn").await.expect("start stubborn");
    rt.kill(pod, "stubborn", libc::SIGTERM, false)
        .await
        .unwrap();
    let still = rt
        .wait(pod, "stubborn", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        still.status,
        ProcessStatus::Running,
        "{name}: ignored SIGTERM"
    );
    rt.kill(pod, "stubborn", libc::SIGKILL, true).await.unwrap();
    let kill_code = rt.wait(pod, "stubborn", WAIT).await.unwrap().exit_code;

    // 4. A tty.
    let req = bundle(
        &env,
        pod,
        "tty",
        &["sh", "-c", "echo on a tty; [ -t 1 ] && echo is a tty"],
        true,
        h,
    )
    .await;
    rt.create(&req).await.expect("create tty");
    rt.start(pod, "tty").await.expect("start tty");
    let tty_done = rt.wait(pod, "tty", WAIT).await.unwrap();
    assert_eq!(tty_done.exit_code, Some(0), "{name}: tty");
    eventually("tty output", || {
        stdout_lines(&env.log_path("tty")).len() >= 2
    })
    .await;
    let tty_out = stdout_lines(&env.log_path("tty"));

    // 5. Created, never started: deleted as it is. Running: killed by the pod's release.
    let req = bundle(&env, pod, "idle", &["sleep", "1000"], false, h).await;
    let idle_pid = rt.create(&req).await.expect("create idle").pid.unwrap();
    let req = bundle(&env, pod, "left", &["sleep", "1000"], false, h).await;
    rt.create(&req).await.expect("create left");
    let left_pid = rt
        .start(pod, "left")
        .await
        .expect("start left")
        .pid
        .unwrap();

    // 6. A program that does not exist: create or start fails, naming it; delete cleans up.
    let req = bundle(&env, pod, "bad", &["/no/such/berth-program"], false, h).await;
    let failed = match rt.create(&req).await {
        Err(e) => e.to_string(),
        Ok(_) => rt.start(pod, "bad").await.unwrap_err().to_string(),
    };
    eprintln!("{name}: missing program: {failed}");
    assert!(failed.contains("berth-program"), "{name}: {failed}");

    // Deleting: the runtime's state goes with the container.
    for id in &ids[..6] {
        rt.delete(pod, id).await.expect("delete");
    }
    assert!(!alive(idle_pid), "{name}: idle container still runs");
    if !h.is_empty() {
        let left = oci(h, &env, pod, &["list", "-q"]);
        assert_eq!(left.trim(), "left", "{name}: containers left");
    }
    rt.release_pod(pod).await.expect("release");
    assert!(!alive(mpid) && !alive(left_pid));
    for id in ids {
        env.remove_bundle(id).await;
        assert!(cgroup_gone(id), "{name}: cgroup of {id} left");
    }
    env.assert_clean();
    Outcome {
        script_out,
        script_code: done.exit_code,
        exec: exec_out,
        exec_missing_fails,
        term_code,
        kill_code,
        tty_out,
        memory_limit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_and_runc_agree() {
    if !root() {
        return;
    }
    let ours = run("").await;
    assert_eq!(ours.script_code, Some(7));
    assert!(
        ours.script_out.contains(&"berth-foo".to_string()),
        "{ours:?}"
    );
    assert!(
        ours.script_out.contains(&"berth-test".to_string()),
        "{ours:?}"
    );
    assert_eq!(
        ours.exec,
        (
            b"exec exec-foo\n0\nCapEff:\t00000000a80425fb\n".to_vec(),
            b"err\n".to_vec(),
            3
        )
    );
    assert!(ours.exec_missing_fails);
    assert_eq!((ours.term_code, ours.kill_code), (Some(42), Some(137)));
    assert_eq!(ours.tty_out, vec!["on a tty", "is a tty"]);
    assert_eq!(ours.memory_limit, (64u64 << 20).to_string());
    if !Path::new(RUNC).exists() {
        eprintln!("skipped runc: no {RUNC}");
        return;
    }
    let theirs = run("runc").await;
    assert_eq!(ours, theirs);
}

/// crun 1.8 refuses hybrid (v1 + v2) cgroup hosts: run where cgroups are v2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crun_agrees_on_cgroup_v2() {
    if !root() {
        return;
    }
    if !Path::new(CRUN).exists() || berth_linux::cgroup::mode() != CgroupMode::V2 {
        eprintln!("skipped: crun runs on cgroup v2 only hosts (../shared/tools/vm-lane.sh)");
        return;
    }
    let ours = run("").await;
    let theirs = run("crun").await;
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn unknown_handler_is_rejected() {
    let rt = LinuxContainerRuntime::new("/nonexistent-berth-run".into(), "/bin/false".into())
        .with_oci_runtimes(runtimes());
    let req = CreateRequest {
        pod_id: "p".into(),
        container_id: "c".into(),
        bundle: "/nonexistent-berth-bundle".into(),
        handler: "kata".into(),
        stdio: berth_core::runtime::StdioConfig {
            log_path: None,
            tty: false,
            stdin: false,
            stdin_once: false,
        },
    };
    let err = rt.create(&req).await.unwrap_err().to_string();
    assert!(
        err.contains("kata") && err.contains("oci_runtimes"),
        "{err}"
    );
}
