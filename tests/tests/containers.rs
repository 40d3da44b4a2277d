//! Containers over berthd's socket with the busybox image from a local registry: logs in
//! the CRI format, exit codes, process settings, mounts, security, resources, ExecSync,
//! a berthd killed with SIGKILL, berth's runtime against runc, and create/remove cycles.
//! Each test has its own berthd, registry, bridge, subnet and cgroup parent, and ends with
//! [`CtrTest::finish`], which removes everything over the CRI and fails on any leftover.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_tests::containers::{CtrTest, known_bug, logs, resources, rpc, spec_cgroups_path};
use berth_tests::cri::ContainerState;
use berth_tests::cri::security_profile::ProfileType;
use berth_tests::{finish, skip};
use tonic::Code;

/// Declares a test that needs root and the registry tools, and runs `body`.
macro_rules! ctr_test {
    ($name:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let bins = ["docker-registry", "skopeo", "busybox", "nft", "ip"];
            if skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            finish($body().await);
        }
    };
}

/// `key=value` lines of a script's output (later keys win).
fn kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn get<'a>(m: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    m.get(k).map(String::as_str).unwrap_or("<missing>")
}

const WAIT: Duration = Duration::from_secs(30);

ctr_test!(output_in_cri_log_and_exit_codes, logs_body);
async fn logs_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "logs").await?;

    let out = t
        .spec("out")
        .sh("echo out-1; echo err-1 >&2; echo out-2; printf tail; exit 3");
    let id = t.run(&mut c, &pod, &out).await?;
    let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
    ensure!(
        st.exit_code == 3 && st.reason == "Error",
        "exit {} reason {:?}",
        st.exit_code,
        st.reason
    );
    ensure!(
        st.started_at > 0 && st.finished_at >= st.started_at,
        "{st:?}"
    );
    let path = pod.log_path(&out);
    ensure!(
        st.log_path == path.display().to_string(),
        "status log_path {:?}, want {path:?}",
        st.log_path
    );
    let lines = logs::read(&path)?;
    ensure!(
        logs::messages(&lines, "stdout") == ["out-1", "out-2", "tail"],
        "stdout in {path:?}: {lines:?}"
    );
    ensure!(
        logs::messages(&lines, "stderr") == ["err-1"],
        "stderr: {lines:?}"
    );
    // Output without a final newline ends with a partial line, as containerd writes it.
    ensure!(
        lines
            .iter()
            .rfind(|l| l.stream == "stdout")
            .is_some_and(|l| l.partial && l.msg == "tail"),
        "last line: {lines:?}"
    );
    ensure!(
        lines.windows(2).all(|w| w[0].time <= w[1].time),
        "timestamps go back: {lines:?}"
    );

    for (name, script, code, reason) in [
        ("zero", "true", 0, "Completed"),
        ("one", "false", 1, "Error"),
        ("signal", "kill -9 $$", 137, "Error"),
        ("big", "exit 255", 255, "Error"),
    ] {
        let s = t.spec(name).sh(script);
        let id = t.run(&mut c, &pod, &s).await?;
        let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
        ensure!(
            st.exit_code == code && st.reason == reason,
            "{name}: `{script}` gave exit {} reason {:?}, want {code} {reason:?}",
            st.exit_code,
            st.reason
        );
    }

    // A long-running logger; its log is rotated the kubelet's way (rename, then
    // ReopenContainerLog) and no line is lost or doubled across the two files.
    let lg = t
        .spec("rotate")
        .sh("i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.05; done");
    let id = t.run(&mut c, &pod, &lg).await?;
    let path = pod.log_path(&lg);
    logs::wait_for(&path, "stdout", WAIT, |m| m == "line-5").await?;
    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated)?;
    rpc::reopen_log(&mut c, &id)
        .await
        .map_err(|s| anyhow::anyhow!("ReopenContainerLog: {s}"))?;
    ensure!(path.is_file(), "ReopenContainerLog did not create {path:?}");
    logs::wait_for(&path, "stdout", WAIT, |m| m.starts_with("line-")).await?;
    rpc::stop(&mut c, &id, 0).await?;
    let mut all = logs::messages(&logs::read(&rotated)?, "stdout");
    all.extend(logs::messages(&logs::read(&path)?, "stdout"));
    let want: Vec<String> = (0..all.len()).map(|i| format!("line-{i}")).collect();
    ensure!(all == want, "lines across the rotation: {all:?}");

    let listed = rpc::list(&mut c, None).await?;
    ensure!(listed.len() == 6, "ListContainers: {listed:?}");
    let exited = rpc::list(
        &mut c,
        Some(rpc::Filter {
            state: Some(ContainerState::ContainerExited),
            labels: vec![("ctr".into(), "big".into())],
            ..Default::default()
        }),
    )
    .await?;
    ensure!(exited.len() == 1, "filtered: {exited:?}");
    t.finish().await
}

ctr_test!(env_user_groups_and_workdir, process_body);
async fn process_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "proc").await?;
    let script = "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); echo cwd=$(pwd); \
                  echo foo=$FOO; echo path=$PATH; echo hostname=$HOSTNAME; echo home=$HOME; \
                  echo argv=$0,$1,$2";
    let s = t
        .spec("proc")
        .cmd(&["sh", "-c", script])
        .args(&["arg-a", "arg-b"])
        .env("FOO", "bar baz")
        .workdir("/home/tester")
        .user(1000)
        .group(1000)
        .groups(&[7, 100]);
    let id = t.run(&mut c, &pod, &s).await?;
    let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
    let out = logs::messages(&logs::read(&pod.log_path(&s))?, "stdout").join("\n");
    ensure!(st.exit_code == 0, "exit {}: {out}", st.exit_code);
    let m = kv(&out);
    ensure!(
        get(&m, "uid") == "1000" && get(&m, "gid") == "1000",
        "{out}"
    );
    let groups: Vec<&str> = get(&m, "groups").split(' ').collect();
    for g in ["1000", "7", "100"] {
        ensure!(groups.contains(&g), "groups {groups:?} lack {g}");
    }
    ensure!(get(&m, "cwd") == "/home/tester", "{out}");
    ensure!(get(&m, "foo") == "bar baz", "{out}");
    ensure!(get(&m, "path").contains("/bin"), "{out}");
    ensure!(get(&m, "hostname") == "proc", "{out}");
    // `sh -c script a b`: $0 is a, $1 is b.
    ensure!(get(&m, "argv") == "arg-a,arg-b,", "command + args: {out}");
    // HOME from the image's /etc/passwd when the env lacks it, as runc sets it.
    ensure!(get(&m, "home") == "/home/tester", "HOME: {out}");

    // A working dir missing from the image is created, as runc does (mkdir -p in the
    // container's root before chdir).
    let wd = t.spec("workdir").sh("pwd").workdir("/made/by/runtime");
    match t.run(&mut c, &pod, &wd).await {
        Ok(id) => {
            let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
            let out = logs::messages(&logs::read(&pod.log_path(&wd))?, "stdout");
            ensure!(st.exit_code == 0 && out == ["/made/by/runtime"], "{out:?}");
        }
        Err(e) => known_bug(
            false,
            &format!(
                "a working dir missing from the image is not created (runc creates it): {e:#}"
            ),
        )?,
    }

    // run_as_username resolves through the image's /etc/passwd; root by default.
    let by_name = t.spec("by-name").sh("id -un; id -u").username("tester");
    let root = t.spec("root").sh("id -un; id -u; id -G");
    for (s, want) in [(&by_name, "tester\n1000"), (&root, "root\n0\n0")] {
        let id = t.run(&mut c, &pod, s).await?;
        let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
        let out = logs::messages(&logs::read(&pod.log_path(s))?, "stdout").join("\n");
        ensure!(
            st.exit_code == 0 && out == want,
            "{}: exit {} output {out:?}, want {want:?}",
            s.name(),
            st.exit_code
        );
    }
    t.finish().await
}

ctr_test!(bind_mounts_and_readonly_rootfs, mounts_body);
async fn mounts_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "mounts").await?;
    let host = t.t.d.dir().join("host-data");
    let (ro, rw) = (host.join("ro"), host.join("rw"));
    std::fs::create_dir_all(&ro)?;
    std::fs::create_dir_all(&rw)?;
    std::fs::write(ro.join("file"), "from-host\n")?;
    std::fs::write(host.join("single.conf"), "single\n")?;
    let script = "cat /ro/file; (echo x > /ro/new) 2>/dev/null && echo ro-writable || echo ro-refused; \
                  echo written > /rw/out && echo rw-ok; cat /etc/single.conf; \
                  (touch /rootfs-file) 2>&1 | grep -q 'Read-only' && echo rootfs-ro || echo rootfs-rw; \
                  touch /dev/shm/x && echo shm-ok; grep -E ' /(ro|rw) ' /proc/self/mounts | awk '{split($4, o, \",\"); print $2, o[1]}'";
    let s = t
        .spec("mounts")
        .sh(script)
        .mount(ro.to_str().unwrap_or_default(), "/ro", true)
        .mount(rw.to_str().unwrap_or_default(), "/rw", false)
        .mount(
            host.join("single.conf").to_str().unwrap_or_default(),
            "/etc/single.conf",
            true,
        )
        .readonly_rootfs();
    let id = t.run(&mut c, &pod, &s).await?;
    let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
    let out = logs::messages(&logs::read(&pod.log_path(&s))?, "stdout");
    let want = [
        "from-host",
        "ro-refused",
        "rw-ok",
        "single",
        "rootfs-ro",
        "shm-ok",
        "/ro ro",
        "/rw rw",
    ];
    ensure!(
        st.exit_code == 0 && out == want,
        "exit {}: {out:?}, want {want:?}",
        st.exit_code
    );
    ensure!(std::fs::read_to_string(rw.join("out"))? == "written\n");
    ensure!(!ro.join("new").exists());
    let full = rpc::status(&mut c, &id).await?;
    ensure!(
        full.mounts.len() == 3 && full.mounts[0].readonly && !full.mounts[1].readonly,
        "status mounts: {:?}",
        full.mounts
    );

    // Same image without readonly rootfs: writes land in the container's own layer.
    let w = t
        .spec("writable")
        .sh("echo hi > /rootfs-file && cat /rootfs-file");
    let id = t.run(&mut c, &pod, &w).await?;
    let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
    let out = logs::messages(&logs::read(&pod.log_path(&w))?, "stdout");
    ensure!(st.exit_code == 0 && out == ["hi"], "{out:?}");
    t.finish().await
}

ctr_test!(capabilities_and_runtime_default_seccomp, security_body);
async fn security_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "sec").await?;
    let probe = "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/self/status | awk -F'[:\\t ]+' '{print $1\"=\"$2}'; \
                 busybox unshare -n true 2>/tmp/e; echo unshare_net=$?; echo unshare_net_err=$(cat /tmp/e); \
                 busybox unshare -Ur true 2>/tmp/e; echo unshare_user=$?; echo unshare_user_err=$(cat /tmp/e)";
    let default = t.spec("default").sh(probe);
    let caps = t
        .spec("caps")
        .sh(probe)
        .caps(&["NET_ADMIN", "KILL"], &["ALL"])
        .no_new_privs();
    let rd = t.spec("rd").sh(probe).seccomp(ProfileType::RuntimeDefault);
    let unconfined = t
        .spec("unconfined")
        .sh(probe)
        .seccomp(ProfileType::Unconfined);
    let mut got = BTreeMap::new();
    for s in [&default, &caps, &rd, &unconfined] {
        let id = t.run(&mut c, &pod, s).await?;
        let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
        let out = logs::messages(&logs::read(&pod.log_path(s))?, "stdout").join("\n");
        ensure!(
            st.exit_code == 0,
            "{}: exit {}: {out}",
            s.name(),
            st.exit_code
        );
        got.insert(s.name(), kv(&out));
    }
    // containerd's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID
    // SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE.
    let d = &got["default"];
    for k in ["CapEff", "CapBnd", "CapPrm"] {
        ensure!(get(d, k) == "00000000a80425fb", "default {k}: {d:?}");
    }
    // drop ALL + NET_ADMIN (12) + KILL (5).
    let cp = &got["caps"];
    for k in ["CapEff", "CapBnd", "CapPrm"] {
        ensure!(get(cp, k) == "0000000000001020", "caps {k}: {cp:?}");
    }
    ensure!(get(cp, "NoNewPrivs") == "1", "{cp:?}");
    ensure!(get(d, "NoNewPrivs") == "0", "{d:?}");
    // RuntimeDefault: filter on, namespaces refused with EPERM even where the kernel
    // itself would allow them (an unprivileged user namespace).
    let r = &got["rd"];
    ensure!(get(r, "Seccomp") == "2", "RuntimeDefault: {r:?}");
    for k in ["unshare_net", "unshare_user"] {
        ensure!(
            get(r, k) != "0" && get(r, &format!("{k}_err")).contains("Operation not permitted"),
            "RuntimeDefault {k}: {r:?}"
        );
    }
    let u = &got["unconfined"];
    ensure!(get(u, "Seccomp") == "0", "Unconfined: {u:?}");
    ensure!(
        get(u, "unshare_net") != "0",
        "unshare -n without CAP_SYS_ADMIN: {u:?}"
    );
    ensure!(
        get(u, "unshare_user") == "0",
        "Unconfined: an unprivileged user namespace should be allowed: {u:?}"
    );
    t.finish().await
}

// ExecSync: output, exit codes, the container's env and user, a timeout that kills.
ctr_test!(exec_sync_output_exit_codes_and_timeout, exec_body);
async fn exec_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "exec").await?;
    let s = t
        .spec("exec")
        .cmd(&["sleep", "3600"])
        .env("FROM_SPEC", "yes")
        .user(1000)
        .workdir("/tmp");
    let id = t.run(&mut c, &pod, &s).await?;
    let r = rpc::exec_sync(
        &mut c,
        &id,
        &[
            "sh",
            "-c",
            "echo $FROM_SPEC $(id -u) $(pwd); echo oops >&2; exit 4",
        ],
        10,
    )
    .await?;
    ensure!(r.exit_code == 4, "exit {}", r.exit_code);
    ensure!(
        String::from_utf8_lossy(&r.stdout) == "yes 1000 /tmp\n",
        "stdout {:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    ensure!(String::from_utf8_lossy(&r.stderr) == "oops\n");
    // Not found: 127 from the runtime (or an error); never a success.
    match rpc::exec_sync(&mut c, &id, &["/no/such/binary"], 10).await {
        Ok(r) => ensure!(r.exit_code != 0, "missing binary exited 0"),
        Err(s) => ensure!(s.code() != Code::Ok),
    }
    // Big output is returned whole.
    let r = rpc::exec_sync(&mut c, &id, &["sh", "-c", "seq 1 100000"], 20).await?;
    ensure!(
        r.stdout.len() == 588_895,
        "seq output: {} bytes",
        r.stdout.len()
    );

    let started = Instant::now();
    let res = rpc::exec_sync(
        &mut c,
        &id,
        &["sh", "-c", "echo $$ > /tmp/exec.pid; exec sleep 30"],
        1,
    )
    .await;
    let took = started.elapsed();
    match res {
        Err(s) => ensure!(
            s.code() == Code::DeadlineExceeded,
            "timeout: {:?}: {}",
            s.code(),
            s.message()
        ),
        Ok(r) => bail!("ExecSync with timeout 1s returned {r:?} after {took:?}"),
    }
    ensure!(took < Duration::from_secs(10), "timeout took {took:?}");
    // The timed-out process is gone.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = rpc::exec_ok(&mut c, &id, &["sh", "-c", "ps -o pid,args"]).await?;
        if !ps.contains("sleep 30") {
            break;
        }
        ensure!(Instant::now() < until, "timed-out exec still runs:\n{ps}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rpc::stop(&mut c, &id, 0).await?;
    let st = rpc::status(&mut c, &id).await?;
    ensure!(st.state == ContainerState::ContainerExited as i32);
    match rpc::exec_sync(&mut c, &id, &["true"], 5).await {
        Err(s) => ensure!(
            s.code() == Code::FailedPrecondition || s.code() == Code::NotFound,
            "exec in an exited container: {:?}: {}",
            s.code(),
            s.message()
        ),
        Ok(r) => bail!("exec in an exited container answered {r:?}"),
    }
    let _ = spec_cgroups_path;
    t.finish().await
}

ctr_test!(memory_limit_leads_to_oom_killed, oom_body);
async fn oom_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "oom").await?;
    resources::oom_killed(&t, &mut c, &pod).await?;
    t.finish().await
}

ctr_test!(cpu_quota_pids_limit_and_update_resources, limits_body);
async fn limits_body() -> Result<()> {
    let t = CtrTest::start().await?;
    resources::limit_parent_pids(&t, 20)?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "limits").await?;
    resources::pids_limited(&t, &mut c, &pod, 20).await?;
    resources::cpu_and_update(&t, &mut c, &pod).await?;
    t.finish().await
}

/// Consecutive `0, 1, 2, ...` counter lines? Returns the first break, if any.
fn counter_gap(msgs: &[String]) -> Option<String> {
    for (i, m) in msgs.iter().enumerate() {
        if m.parse::<usize>().ok() != Some(i) {
            return Some(format!("line {i} is {m:?}"));
        }
    }
    None
}

ctr_test!(berthd_kill9_while_containers_run, kill9_body);
async fn kill9_body() -> Result<()> {
    let mut t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "kill9").await?;
    let sleeper = t.spec("sleeper").cmd(&["sleep", "3600"]);
    let short = t.spec("short").sh("sleep 2; echo bye; exit 7");
    let logger = t
        .spec("logger")
        .sh("i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done");
    let ids = [
        t.run(&mut c, &pod, &sleeper).await?,
        t.run(&mut c, &pod, &short).await?,
        t.run(&mut c, &pod, &logger).await?,
    ];
    let sleeper_pid = rpc::pid(&mut c, &ids[0]).await?;
    let log = pod.log_path(&logger);
    logs::wait_for(&log, "stdout", WAIT, |m| m == "3").await?;
    drop(c);

    t.t.d.kill9()?;
    let killed_at = berth_tests::containers::now_ns();
    let at_kill = logs::messages(&logs::read(&log)?, "stdout").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    t.t.d.start_again().await?;
    let mut c = t.rt().await?;

    let listed = rpc::list(&mut c, None).await?;
    let state_of = |id: &str| listed.iter().find(|x| x.id == id).map(|x| x.state);
    ensure!(
        state_of(&ids[0]) == Some(ContainerState::ContainerRunning as i32)
            && state_of(&ids[2]) == Some(ContainerState::ContainerRunning as i32),
        "after restart: {listed:?}"
    );
    ensure!(
        state_of(&ids[1]) == Some(ContainerState::ContainerExited as i32),
        "the short container: {listed:?}"
    );
    let st = rpc::status(&mut c, &ids[1]).await?;
    ensure!(
        st.exit_code == 7 && st.reason == "Error",
        "exit while berthd was down: {} {:?}",
        st.exit_code,
        st.reason
    );
    ensure!(
        st.finished_at > killed_at && st.finished_at < berth_tests::containers::now_ns(),
        "finished_at {} is not in berthd's downtime (killed at {killed_at})",
        st.finished_at
    );
    ensure!(
        logs::messages(&logs::read(&pod.log_path(&short))?, "stdout") == ["bye"],
        "the short container's log"
    );
    ensure!(
        rpc::pid(&mut c, &ids[0]).await? == sleeper_pid,
        "the sleeper was restarted"
    );
    ensure!(rpc::exec_ok(&mut c, &ids[0], &["echo", "alive"]).await? == "alive\n");

    // The logger wrote on while berthd was gone: no gap, nothing doubled.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rpc::stop(&mut c, &ids[2], 5).await?;
    let msgs = logs::messages(&logs::read(&log)?, "stdout");
    ensure!(
        counter_gap(&msgs).is_none(),
        "logger: {:?}",
        counter_gap(&msgs)
    );
    ensure!(
        msgs.len() >= at_kill + 30,
        "logger wrote {} lines, {at_kill} at the kill: nothing during the downtime?",
        msgs.len()
    );
    let st = rpc::status(&mut c, &ids[2]).await?;
    ensure!(st.state == ContainerState::ContainerExited as i32);
    rpc::stop(&mut c, &ids[0], 0).await?;
    ensure!(
        rpc::status(&mut c, &ids[0]).await?.exit_code == 137,
        "SIGKILLed sleeper"
    );
    drop(c);
    t.finish().await
}

// The same container spec under berth's runtime and under berthd's runc handler: the
// process sees the same identity, capabilities, seccomp, hostname, env, /dev and mounts.
ctr_test!(same_view_under_berth_runtime_and_runc, differential_body);
async fn differential_body() -> Result<()> {
    if skip::which("runc").is_none() {
        println!("SKIP same_view_under_berth_runtime_and_runc: no runc");
        return Ok(());
    }
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let probe = "id; grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status; hostname; \
                 echo cwd=$(pwd); echo umask=$(umask); echo nofile=$(ulimit -n); \
                 echo oom=$(cat /proc/self/oom_score_adj); env | busybox sort; \
                 busybox unshare -n true 2>/dev/null; echo unshare=$?; \
                 touch /etc/probe 2>/dev/null; echo rootfs_write=$?; ls -A /dev; \
                 awk '{print $2, $3}' /proc/self/mounts | busybox sort; \
                 for p in /proc/kcore /proc/sys /sys/firmware; do \
                   echo $p $(stat -c %F $p 2>/dev/null); done";
    let variants = [
        ("plain", t.spec("probe").sh(probe)),
        (
            "restricted",
            t.spec("probe")
                .sh(probe)
                .user(1000)
                .group(1000)
                .groups(&[7])
                .caps(&["NET_ADMIN"], &["CHOWN", "KILL"])
                .seccomp(ProfileType::RuntimeDefault)
                .no_new_privs()
                .readonly_rootfs()
                .workdir("/tmp")
                .env("A", "b"),
        ),
    ];
    for (k, (what, spec)) in variants.iter().enumerate() {
        let mut outs = Vec::new();
        for handler in ["", "runc"] {
            let pod_spec = berth_tests::pods::PodSpec::new(
                &format!(
                    "diff-{k}-{}",
                    if handler.is_empty() { "berth" } else { handler }
                ),
                &t.t.net,
            )
            .hostname("same-host");
            let pod = t.pod_with_handler(&mut c, pod_spec, handler).await?;
            let id = t.run(&mut c, &pod, spec).await?;
            let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
            let out = logs::messages(&logs::read(&pod.log_path(spec))?, "stdout");
            ensure!(
                st.exit_code == 0,
                "{what} under {handler:?}: exit {}: {out:?}",
                st.exit_code
            );
            outs.push(out);
        }
        // berth binds host device nodes where runc mknods them in a tmpfs: same paths, but
        // the extra mounts, and masked files (bound over by /dev/null) show devtmpfs.
        let berth_only = |l: &String| {
            ["null", "zero", "full", "random", "urandom", "tty"]
                .iter()
                .any(|d| l.starts_with(&format!("/dev/{d} ")))
                || l.starts_with("/sys/fs/cgroup/unified ")
        };
        let norm = |l: &String| {
            if l.starts_with("/proc/") && l.ends_with(" devtmpfs") {
                l.replace(" devtmpfs", " tmpfs")
            } else {
                l.clone()
            }
        };
        let berth: Vec<String> = outs[0]
            .iter()
            .filter(|l| !berth_only(l))
            .map(norm)
            .collect();
        let runc: Vec<String> = outs[1].iter().map(norm).collect();
        let only_berth: Vec<&String> = berth.iter().filter(|l| !runc.contains(l)).collect();
        let only_runc: Vec<&String> = runc.iter().filter(|l| !berth.contains(l)).collect();
        ensure!(
            berth == runc,
            "{what}: only under berth: {only_berth:?}; only under runc: {only_runc:?}\n\
             berth {berth:?}\nrunc {runc:?}"
        );
        eprintln!("differential {what}: {} lines compared", runc.len());
    }
    t.finish().await
}

ctr_test!(
    hundred_create_start_stop_remove_cycles_leave_nothing,
    cycles_body
);
async fn cycles_body() -> Result<()> {
    const CYCLES: usize = 100;
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "cycles").await?;
    let started = Instant::now();
    let bundles = t.t.root_dir.join("containers");
    for i in 0..CYCLES {
        let s = t.spec(&format!("cycle-{i}")).cmd(&["sleep", "3600"]);
        let id = t
            .run(&mut c, &pod, &s)
            .await
            .with_context(|| format!("cycle {i}"))?;
        let path = resources::cgroups_path(&mut c, &id).await?;
        rpc::stop(&mut c, &id, 10)
            .await
            .with_context(|| format!("stop, cycle {i}"))?;
        let st = rpc::status(&mut c, &id).await?;
        ensure!(
            st.state == ContainerState::ContainerExited as i32 && st.exit_code == 143,
            "cycle {i}: stopped by SIGTERM: exit {} {:?}",
            st.exit_code,
            st.reason
        );
        rpc::remove(&mut c, &id)
            .await
            .with_context(|| format!("remove, cycle {i}"))?;
        ensure!(
            berth_tests::containers::cgroup_dirs(&path).is_empty(),
            "cycle {i}: cgroup {path} left"
        );
        let left = std::fs::read_dir(&bundles).map(|r| r.count()).unwrap_or(0);
        ensure!(left == 0, "cycle {i}: {left} bundles left in {bundles:?}");
    }
    let listed = rpc::list(&mut c, None).await?;
    ensure!(
        listed.is_empty(),
        "containers listed after removal: {listed:?}"
    );
    eprintln!(
        "{CYCLES} container cycles in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(c);
    t.finish().await
}

/// crictl against berthd with the fixtures: runp, create, start, ps, inspect, logs,
/// exec -s, stop, rm, and the pod's teardown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crictl_create_start_logs_exec_stop_rm() {
    let bins = [
        "docker-registry",
        "skopeo",
        "busybox",
        "nft",
        "ip",
        "crictl",
    ];
    if skip::skip_unless("crictl_create_start_logs_exec_stop_rm", &bins, true) {
        return;
    }
    finish(crictl_body().await);
}

async fn crictl_body() -> Result<()> {
    use berth_tests::pods::fixture::fixture_path;
    use serde_json::Value;
    let t = CtrTest::start().await?;
    let endpoint = format!("unix://{}", t.t.d.socket.display());
    let crictl = |args: &[&str]| -> Result<String> {
        let mut cmd = std::process::Command::new("crictl");
        cmd.args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ])
        .args(["--timeout", "30s"])
        .args(args)
        .stdin(std::process::Stdio::null());
        berth_tests::pods::host::output_ok(cmd, &format!("crictl {}", args.join(" ")))
    };
    let dir = t.t.d.dir();
    let fixture = |name: &str| -> Result<Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            fixture_path(name),
        )?)?)
    };
    let write = |name: &str, v: &Value| -> Result<String> {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v)?)?;
        Ok(p.display().to_string())
    };
    let mut pod = fixture("pod.json")?;
    pod["linux"]["cgroup_parent"] = t.t.net.cgroup_parent.clone().into();
    let log_dir = dir.join("logs/crictl");
    pod["log_directory"] = log_dir.display().to_string().into();
    let pod_file = write("pod.json", &pod)?;
    let mut files = Vec::new();
    for name in ["container.json", "container-exit.json"] {
        let mut ctr = fixture(name)?;
        ctr["image"]["image"] = t.image().into();
        files.push(write(name, &ctr)?);
    }

    let pod_id = crictl(&["runp", &pod_file])?.trim().to_string();
    t.t.track(&pod_id);
    let id = crictl(&["create", &pod_id, &files[0], &pod_file])?
        .trim()
        .to_string();
    ensure!(id.len() == 64, "crictl create printed {id:?}");
    crictl(&["start", &id])?;
    let exit_id = crictl(&["create", &pod_id, &files[1], &pod_file])?
        .trim()
        .to_string();
    crictl(&["start", &exit_id])?;
    let log = log_dir.join("berth-fixture-ctr/0.log");
    logs::wait_for(&log, "stdout", WAIT, |m| m == "hello from the fixture").await?;

    let ps: Value = serde_json::from_str(&crictl(&["ps", "-o", "json"])?)?;
    let running = ps["containers"].as_array().context("crictl ps")?;
    ensure!(
        running.len() == 1 && running[0]["id"] == id.as_str(),
        "crictl ps: {ps}"
    );
    ensure!(running[0]["state"] == "CONTAINER_RUNNING", "{ps}");
    let all: Value = serde_json::from_str(&crictl(&["ps", "-a", "-o", "json"])?)?;
    ensure!(
        all["containers"].as_array().map(Vec::len) == Some(2),
        "{all}"
    );
    let insp: Value = serde_json::from_str(&crictl(&["inspect", "-o", "json", &id])?)?;
    ensure!(
        insp["status"]["metadata"]["name"] == "berth-fixture-ctr"
            && insp["status"]["annotations"]["berth.test/fixture"] == "container.json",
        "crictl inspect: {}",
        insp["status"]
    );
    ensure!(
        insp["info"]["pid"].as_i64().is_some_and(|p| p > 1),
        "{}",
        insp["info"]
    );
    let logs_out = crictl(&["logs", &id])?;
    ensure!(
        logs_out == "started as 1000 in /tmp\nhello from the fixture\n",
        "crictl logs: {logs_out:?}"
    );
    let caps = crictl(&["exec", "-s", &id, "grep", "CapEff", "/proc/self/status"])?;
    // The default set without NET_RAW (13); a non-root user keeps no effective caps.
    ensure!(caps.trim() == "CapEff:\t0000000000000000", "{caps:?}");
    let quota = std::fs::read_to_string(
        berth_tests::containers::cgroup_dir(
            "cpu",
            &resources::cgroups_path(&mut t.rt().await?, &id).await?,
        )
        .join(if berth_tests::containers::cgroup_v2_only() {
            "cpu.max"
        } else {
            "cpu.cfs_quota_us"
        }),
    )?;
    ensure!(quota.starts_with("50000"), "cpu quota {quota:?}");

    let exited: Value = serde_json::from_str(&crictl(&["inspect", "-o", "json", &exit_id])?)?;
    ensure!(
        exited["status"]["state"] == "CONTAINER_EXITED" && exited["status"]["exitCode"] == 3,
        "{}",
        exited["status"]
    );
    crictl(&["stop", "--timeout", "2", &id])?;
    crictl(&["rm", &id, &exit_id])?;
    ensure!(crictl(&["ps", "-a", "-q"])?.trim().is_empty());
    crictl(&["stopp", &pod_id])?;
    crictl(&["rmp", &pod_id])?;
    t.finish().await
}

// berthd with the harness's default run dir (`/tmp/berthd-test-XXXXXX/run`): a pod
// monitor's socket path there is longer than a unix socket address holds (108 bytes).
ctr_test!(containers_with_a_long_run_dir, long_run_dir_body);
async fn long_run_dir_body() -> Result<()> {
    use berth_tests::containers::{CtrSpec, ctest_net};
    use berth_tests::pods::{PodSpec, PodTest, rpc as prpc};
    let reg = berth_tests::Registry::start()?;
    let img = reg.push(&berth_tests::images::build(
        berth_tests::TestImage::Busybox,
    )?)?;
    let t = PodTest::start_on(ctest_net(), "", Vec::new()).await?;
    let mut ic = t.d.images().await?;
    berth_tests::client::pull(&mut ic, &img.reference, None).await?;
    let mut c = t.rt().await?;
    let spec = PodSpec::new("long", &t.net);
    let pod = t.run(&mut c, &spec).await?;
    let ctr = CtrSpec::new("c", &img.reference).cmd(&["sleep", "3600"]);
    let sock = t
        .run_dir
        .join("pods")
        .join(&pod)
        .join("monitor/monitor.sock");
    match rpc::create(&mut c, &pod, &ctr.config, &spec.config).await {
        Ok(id) => {
            rpc::start(&mut c, &id).await?;
            rpc::stop(&mut c, &id, 0).await?;
            rpc::remove(&mut c, &id).await?;
        }
        Err(s) => known_bug(
            false,
            &format!(
                "CreateContainer fails when the pod monitor's socket path ({} bytes: {sock:?}) \
                 exceeds sun_path: {:?}: {}",
                sock.as_os_str().len(),
                s.code(),
                s.message()
            ),
        )?,
    }
    // Whatever happened, the pod must go.
    let gone = match prpc::stop(&mut c, &pod).await {
        Ok(()) => prpc::remove(&mut c, &pod).await,
        Err(s) => Err(s),
    };
    if let Err(s) = gone {
        known_bug(
            false,
            &format!(
                "a pod whose monitor could not start cannot be removed: {:?}: {}",
                s.code(),
                s.message()
            ),
        )?;
        // PodTest's drop force-cleans what the pod left.
        return Ok(());
    }
    drop(c);
    t.finish().await
}
