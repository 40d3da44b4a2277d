//! The CRI behaviours critest and the kubelet rely on (issue "Kubernetes conformance",
//! sections 2 and 4), against a real berthd: berth's own notes never reach a container's
//! output, `ALL`/privileged capabilities are the host's bounding set, StopContainer of an
//! unknown id succeeds, a name in use is AlreadyExists except for the one retry after a lost
//! answer, host-network pods refuse a hostname, and ExecSync waits for output to drain for a
//! bounded time. Each test ends with [`CtrTest::finish`] (no leftovers).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_tests::containers::{CtrSpec, CtrTest, Pod, logs, rpc};
use berth_tests::cri::{CreateContainerRequest, LinuxSandboxSecurityContext, RunPodSandboxRequest};
use berth_tests::pods::PodSpec;
use berth_tests::pods::rpc::{self as pod_rpc, Runtime};
use berth_tests::{finish, skip};
use tonic::Code;

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

const WAIT: Duration = Duration::from_secs(30);

/// `CapBnd` of a /proc/<pid>/status text.
fn cap_bnd(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| v.trim().to_string())
}

/// A privileged pod (privileged containers need one).
async fn privileged_pod(t: &CtrTest, c: &mut Runtime, name: &str) -> Result<Pod> {
    let mut spec = PodSpec::new(name, &t.t.net);
    let linux = spec.config.linux.get_or_insert_with(Default::default);
    linux
        .security_context
        .get_or_insert_with(LinuxSandboxSecurityContext::default)
        .privileged = true;
    t.pod_from(c, spec).await
}

fn privileged(mut s: CtrSpec) -> CtrSpec {
    s.config
        .linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .privileged = true;
    s
}

/// Every `monitor.log` below `dir`.
fn monitor_logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(monitor_logs(&p));
        } else if p.file_name().is_some_and(|n| n == "monitor.log") {
            out.push(p);
        }
    }
    out
}

ctr_test!(runtime_notes_never_reach_container_output, notes_body);
async fn notes_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = privileged_pod(&t, &mut c, "notes").await?;
    let host = cap_bnd(&std::fs::read_to_string("/proc/self/status")?).context("CapBnd")?;
    let script = "grep CapBnd /proc/self/status; echo done";
    // Privileged, ALL added, and a capability the host may lack asked for by name: the
    // first two get exactly the host's bounding set; none writes a word of berth's.
    let cases = [
        ("privileged", privileged(t.spec("privileged").sh(script))),
        (
            "all-caps",
            t.spec("all-caps").sh(script).caps(&["ALL"], &[]),
        ),
        (
            "named-caps",
            t.spec("named-caps")
                .sh(script)
                .caps(&["SYS_RESOURCE", "SYS_ADMIN"], &[]),
        ),
    ];
    for (name, spec) in &cases {
        let id = t.run(&mut c, &pod, spec).await?;
        let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
        let lines = logs::read(&pod.log_path(spec))?;
        ensure!(
            st.exit_code == 0,
            "{name}: exit {} log {lines:?}",
            st.exit_code
        );
        let stderr = logs::messages(&lines, "stderr");
        ensure!(
            stderr.is_empty(),
            "{name}: the container's stderr got {stderr:?}"
        );
        let stdout = logs::messages(&lines, "stdout");
        ensure!(
            stdout.last().map(String::as_str) == Some("done")
                && !stdout.iter().any(|l| l.contains("berth")),
            "{name}: stdout {stdout:?}"
        );
        if *name != "named-caps" {
            let got = stdout.iter().find_map(|l| cap_bnd(l)).unwrap_or_default();
            ensure!(
                got == host,
                "{name}: CapBnd {got} is not the host's bounding set {host}"
            );
        }
    }
    // Where the host lacks CAP_SYS_RESOURCE (bit 24), the note is in the monitor's log.
    let mask = u64::from_str_radix(&host, 16)?;
    if mask & (1 << 24) == 0 {
        let text: String = monitor_logs(&t.t.run_dir)
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        ensure!(
            text.contains("left out: CAP_SYS_RESOURCE"),
            "the monitor log does not say CAP_SYS_RESOURCE was left out:\n{text}"
        );
        let log = std::fs::read_to_string(&t.t.d.log_path)?;
        ensure!(
            log.contains("not in berthd's bounding set") && log.contains("SYS_RESOURCE"),
            "berthd's log does not warn about SYS_RESOURCE"
        );
    }
    t.finish().await
}

ctr_test!(stop_container_of_unknown_id_succeeds, stop_unknown_body);
async fn stop_unknown_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    rpc::stop(&mut c, &"f".repeat(64), 0)
        .await
        .map_err(|s| anyhow::anyhow!("StopContainer of an unknown id: {s:?}"))?;
    // A container removed by someone else is stopped too (the kubelet retries stops).
    let pod = t.pod(&mut c, "stops").await?;
    let id = t
        .run(&mut c, &pod, &t.spec("gone").sh("sleep 1000"))
        .await?;
    rpc::stop(&mut c, &id, 0).await?;
    rpc::remove(&mut c, &id).await?;
    rpc::stop(&mut c, &id, 0)
        .await
        .map_err(|s| anyhow::anyhow!("StopContainer of a removed container: {s:?}"))?;
    t.finish().await
}

ctr_test!(
    host_network_pod_with_hostname_is_refused,
    hostnet_hostname_body
);
async fn hostnet_hostname_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let spec = PodSpec::new("hostnet-named", &t.t.net)
        .host_network()
        .hostname("renamed-node");
    let st = pod_rpc::run_err(&mut c, &spec.build()).await?;
    ensure!(
        st.code() == Code::InvalidArgument && st.message().contains("renamed-node"),
        "host network + hostname -> {:?}: {}",
        st.code(),
        st.message()
    );
    ensure!(pod_rpc::list(&mut c, None).await?.is_empty());
    // Without a hostname (what the kubelet sends) it runs.
    let spec = PodSpec::new("hostnet-plain", &t.t.net).host_network();
    t.t.run(&mut c, &spec).await?;
    t.finish().await
}

/// RunPodSandbox with a deadline; the Status on failure.
async fn run_pod_deadline(
    c: &mut Runtime,
    spec: &PodSpec,
    deadline: Duration,
) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(RunPodSandboxRequest {
        config: Some(spec.build()),
        runtime_handler: String::new(),
    });
    req.set_timeout(deadline);
    Ok(c.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id)
}

/// Waits until a pod named `name` is listed Ready; its id.
async fn wait_pod_named(c: &mut Runtime, name: &str) -> Result<String> {
    let until = Instant::now() + WAIT;
    loop {
        let pods = pod_rpc::list(c, None).await?;
        if let Some(p) = pods
            .iter()
            .find(|p| p.metadata.as_ref().is_some_and(|m| m.name == name) && p.state == 0)
        {
            return Ok(p.id.clone());
        }
        if Instant::now() > until {
            bail!("pod {name} never became ready: {pods:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

ctr_test!(
    name_in_use_is_already_exists_except_after_a_lost_answer,
    names_body
);
async fn names_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;

    // An answer that was delivered: the same request again is AlreadyExists.
    let pod = t.pod(&mut c, "named").await?;
    let again = PodSpec::new("named", &t.t.net)
        .log_directory(&t.t.d.dir().join("logs/named").display().to_string());
    let st = pod_rpc::run_err(&mut c, &again.build()).await?;
    ensure!(
        st.code() == Code::AlreadyExists && st.message().contains(&pod.id),
        "repeat RunPodSandbox -> {:?}: {}",
        st.code(),
        st.message()
    );

    // The deadline passes while the pod is being created (the kubelet's timeout): the pod
    // is finished anyway, the identical retry gets it once, a third request is refused.
    let mut lost = None;
    for (i, ms) in [30u64, 10, 3, 1].into_iter().enumerate() {
        let spec = PodSpec::new(&format!("late-{i}"), &t.t.net);
        match run_pod_deadline(&mut c, &spec, Duration::from_millis(ms)).await {
            Err(s) if s.code() == Code::DeadlineExceeded || s.code() == Code::Cancelled => {
                lost = Some(spec);
                break;
            }
            Err(s) => bail!("RunPodSandbox with a {ms} ms deadline: {s:?}"),
            // Faster than the deadline: try a shorter one.
            Ok(id) => t.t.track(&id),
        }
    }
    let spec = lost.context("no RunPodSandbox outlived its deadline")?;
    let name = spec
        .config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let created = wait_pod_named(&mut c, &name).await?;
    t.t.track(&created);
    let retry = pod_rpc::run(&mut c, &spec.build())
        .await
        .map_err(|s| anyhow::anyhow!("retry after the lost answer: {s:?}"))?;
    ensure!(retry == created, "retry got {retry}, the pod is {created}");
    let st = pod_rpc::run_err(&mut c, &spec.build()).await?;
    ensure!(st.code() == Code::AlreadyExists, "third request -> {st:?}");
    ensure!(
        pod_rpc::list(&mut c, None)
            .await?
            .iter()
            .filter(|p| p.metadata.as_ref().is_some_and(|m| m.name == name))
            .count()
            == 1
    );

    // CreateContainer: the same rule.
    let spec = t.spec("box").sh("sleep 1000");
    let id = t.create(&mut c, &pod, &spec).await?;
    let st = rpc::create(&mut c, &pod.id, &spec.config, &pod.config)
        .await
        .err()
        .context("repeat CreateContainer succeeded")?;
    ensure!(
        st.code() == Code::AlreadyExists && st.message().contains(&id),
        "repeat CreateContainer -> {st:?}"
    );
    let mut lost = None;
    for (i, ms) in [30u64, 10, 3, 1].into_iter().enumerate() {
        let spec = t.spec(&format!("late-box-{i}")).sh("sleep 1000");
        let mut req = tonic::Request::new(CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(spec.config.clone()),
            sandbox_config: Some(pod.config.clone()),
        });
        req.set_timeout(Duration::from_millis(ms));
        match c.create_container(req).await {
            Err(s) if s.code() == Code::DeadlineExceeded || s.code() == Code::Cancelled => {
                lost = Some(spec);
                break;
            }
            Err(s) => bail!("CreateContainer with a {ms} ms deadline: {s:?}"),
            Ok(_) => {}
        }
    }
    let spec = lost.context("no CreateContainer outlived its deadline")?;
    // The retry waits for the first creation if it still runs.
    let retry = t.create(&mut c, &pod, &spec).await?;
    let listed = rpc::list(&mut c, None).await?;
    let named: Vec<_> = listed
        .iter()
        .filter(|x| x.metadata.as_ref().map(|m| m.name.as_str()) == Some(&spec.name()))
        .collect();
    ensure!(
        named.len() == 1 && named[0].id == retry,
        "containers named {}: {named:?}",
        spec.name()
    );
    let st = rpc::create(&mut c, &pod.id, &spec.config, &pod.config)
        .await
        .err()
        .context("third CreateContainer succeeded")?;
    ensure!(
        st.code() == Code::AlreadyExists,
        "third CreateContainer -> {st:?}"
    );
    t.finish().await
}

ctr_test!(exec_sync_drains_output_for_a_bounded_time, drain_body);
async fn drain_body() -> Result<()> {
    let t = CtrTest::start_with("[runtime]\nexec_drain_timeout_secs = 3\n", Vec::new()).await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "drain").await?;
    let id = t.run(&mut c, &pod, &t.spec("svc").sh("sleep 1000")).await?;

    // A background child that writes after the command exited, then closes: all of it.
    let r = rpc::exec_sync(
        &mut c,
        &id,
        &["sh", "-c", "echo first; (sleep 1; echo second) &"],
        30,
    )
    .await
    .map_err(|s| anyhow::anyhow!("ExecSync with a short-lived child: {s:?}"))?;
    ensure!(
        r.exit_code == 0 && String::from_utf8_lossy(&r.stdout) == "first\nsecond\n",
        "exit {} stdout {:?}",
        r.exit_code,
        String::from_utf8_lossy(&r.stdout)
    );

    // A child that keeps stdout open for ever: an error naming the exec after the drain
    // time, not a hang until the timeout and not a success with cut output.
    let started = Instant::now();
    let s = rpc::exec_sync(&mut c, &id, &["sh", "-c", "echo hi; sleep 365d &"], 30)
        .await
        .err()
        .context("ExecSync with a child holding stdout succeeded")?;
    let took = started.elapsed();
    ensure!(
        s.message().contains("failed to drain exec process \"exec-") && s.message().contains(&id),
        "{:?}: {}",
        s.code(),
        s.message()
    );
    ensure!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(10),
        "answered after {took:?} (drain time 3 s)"
    );

    // A request timeout below the drain time bounds the wait.
    let started = Instant::now();
    let s = rpc::exec_sync(&mut c, &id, &["sh", "-c", "sleep 365d &"], 1)
        .await
        .err()
        .context("ExecSync (timeout 1 s) with a child holding stdout succeeded")?;
    let took = started.elapsed();
    ensure!(
        s.message().contains("failed to drain exec process") && took < Duration::from_millis(2500),
        "after {took:?}: {:?}: {}",
        s.code(),
        s.message()
    );
    // The container still serves execs.
    ensure!(rpc::exec_ok(&mut c, &id, &["echo", "ok"]).await? == "ok\n");
    t.finish().await
}
