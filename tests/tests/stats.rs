//! Stats and events over berthd's socket: figures that move for a container that burns
//! CPU, fills memory, writes files and sends packets; well-formed answers for created and
//! exited containers; filters; lifecycle events in order for two subscribers at once.
//! On a cgroup v2 node (the VM lane) the same tests read the unified hierarchy.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use berth_tests::containers::{CtrTest, rpc};
use berth_tests::cri::{
    self, ContainerEventType, ContainerStatsFilter, ContainerStatsRequest, GetEventsRequest,
    ListContainerStatsRequest, ListMetricDescriptorsRequest, ListPodSandboxMetricsRequest,
    PodSandboxStatsRequest,
};
use berth_tests::pods::rpc::{self as prpc, Runtime};
use berth_tests::{finish, skip};

macro_rules! stats_test {
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

fn val(v: &Option<cri::UInt64Value>) -> u64 {
    v.as_ref().map(|v| v.value).unwrap_or(0)
}

async fn cstats(c: &mut Runtime, id: &str) -> Result<cri::ContainerStats> {
    c.container_stats(ContainerStatsRequest {
        container_id: id.into(),
    })
    .await
    .map_err(|s| anyhow::anyhow!("ContainerStats {id}: {s:?}"))?
    .into_inner()
    .stats
    .context("ContainerStats: no stats")
}

async fn list(c: &mut Runtime, f: ContainerStatsFilter) -> Result<Vec<String>> {
    let r = c
        .list_container_stats(ListContainerStatsRequest { filter: Some(f) })
        .await
        .map_err(|s| anyhow::anyhow!("ListContainerStats: {s:?}"))?
        .into_inner();
    let mut ids: Vec<String> = r
        .stats
        .into_iter()
        .filter_map(|s| s.attributes.map(|a| a.id))
        .collect();
    ids.sort();
    Ok(ids)
}

fn well_formed(s: &cri::ContainerStats, id: &str) -> Result<()> {
    ensure!(
        s.attributes.as_ref().map(|a| a.id.as_str()) == Some(id),
        "{s:?}"
    );
    let cpu = s.cpu.as_ref().context("no cpu")?;
    let mem = s.memory.as_ref().context("no memory")?;
    let fs = s.writable_layer.as_ref().context("no writable layer")?;
    ensure!(
        cpu.timestamp > 0 && mem.timestamp > 0 && fs.timestamp > 0,
        "{s:?}"
    );
    ensure!(cpu.usage_core_nano_seconds.is_some() && mem.working_set_bytes.is_some());
    ensure!(
        fs.fs_id.as_ref().is_some_and(|f| !f.mountpoint.is_empty()),
        "{s:?}"
    );
    Ok(())
}

stats_test!(figures_move_for_a_busy_container, busy_body);
async fn busy_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "stats").await?;
    let gw = t.t.net.gateway();
    // 20 MiB in the writable layer, 40 MiB in /dev/shm (charged to the container as
    // memory), a few packets to the bridge, then a spinning loop.
    let script = format!(
        "dd if=/dev/zero of=/big bs=1M count=20 2>/dev/null; \
         dd if=/dev/zero of=/dev/shm/m bs=1M count=40 2>/dev/null; \
         ping -c 3 -W 1 {gw} >/dev/null 2>&1; wget -q -T 1 http://{gw}:9/ 2>/dev/null; \
         touch /ready; while :; do :; done"
    );
    let busy = t.spec("busy").label("role", "busy").sh(&script);
    let id = t.run(&mut c, &pod, &busy).await?;
    for _ in 0..100 {
        if rpc::exec_ok(&mut c, &id, &["test", "-e", "/ready"])
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a = cstats(&mut c, &id).await?;
    well_formed(&a, &id)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b = cstats(&mut c, &id).await?;
    let (cpu_a, cpu_b) = (a.cpu.context("cpu")?, b.cpu.context("cpu")?);
    let (cpu_a, cores) = (
        val(&cpu_a.usage_core_nano_seconds),
        val(&cpu_b.usage_nano_cores),
    );
    let cpu_b = val(&cpu_b.usage_core_nano_seconds);
    ensure!(cpu_a > 0 && cpu_b > cpu_a, "cpu {cpu_a} → {cpu_b}");
    ensure!(
        cores > 100_000_000,
        "a spinning loop uses {cores} nano cores"
    );
    let mem = b.memory.as_ref().context("memory")?;
    ensure!(
        val(&mem.working_set_bytes) >= 30 << 20
            && val(&mem.usage_bytes) >= val(&mem.working_set_bytes),
        "memory {mem:?}"
    );
    let fs = b.writable_layer.as_ref().context("writable layer")?;
    ensure!(
        val(&fs.used_bytes) >= 20 << 20 && val(&fs.inodes_used) >= 2,
        "fs {fs:?}"
    );

    let p = c
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod.id.clone(),
        })
        .await?
        .into_inner()
        .stats
        .context("no pod stats")?;
    let linux = p.linux.context("no linux pod stats")?;
    let net = linux.network.context("no network")?;
    let eth = net.default_interface.context("no default interface")?;
    ensure!(
        eth.name == "eth0" && val(&eth.tx_bytes) > 0 && val(&eth.rx_bytes) > 0,
        "{eth:?}"
    );
    ensure!(val(&linux.process.context("process")?.process_count) >= 1);
    ensure!(val(&linux.cpu.context("pod cpu")?.usage_core_nano_seconds) >= cpu_a);
    ensure!(linux.containers.len() == 1, "{:?}", linux.containers);

    // Filters: id prefix, pod, labels.
    let created = t
        .create(
            &mut c,
            &pod,
            &t.spec("idle").label("role", "idle").cmd(&["true"]),
        )
        .await?;
    let mut both = vec![id.clone(), created.clone()];
    both.sort();
    let by = |id: &str, pod: &str, role: Option<&str>| ContainerStatsFilter {
        id: id.into(),
        pod_sandbox_id: pod.into(),
        label_selector: role
            .map(|r| [("role".to_string(), r.to_string())].into())
            .unwrap_or_default(),
    };
    ensure!(list(&mut c, by(&id[..8], "", None)).await? == std::slice::from_ref(&id));
    ensure!(list(&mut c, by("", &pod.id[..8], None)).await? == both);
    ensure!(list(&mut c, by("", "", Some("idle"))).await? == std::slice::from_ref(&created));
    ensure!(list(&mut c, by("", "nope", None)).await?.is_empty());

    // Created, then exited: well-formed answers, never an error.
    well_formed(&cstats(&mut c, &created).await?, &created)?;
    rpc::stop(&mut c, &id, 0).await?;
    well_formed(&cstats(&mut c, &id).await?, &id)?;

    let d = c
        .list_metric_descriptors(ListMetricDescriptorsRequest {})
        .await?
        .into_inner()
        .descriptors;
    ensure!(
        d.iter()
            .any(|d| d.name == "container_cpu_usage_seconds_total")
    );
    let m = c
        .list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
        .await?
        .into_inner()
        .pod_metrics;
    let mine = m
        .iter()
        .find(|m| m.pod_sandbox_id == pod.id)
        .context("pod metrics")?;
    ensure!(mine.container_metrics.len() == 2, "{mine:?}");
    ensure!(
        mine.metrics
            .iter()
            .any(|m| m.name == "container_network_transmit_bytes_total" && val(&m.value) > 0),
        "{:?}",
        mine.metrics
    );
    drop(c);
    t.finish().await
}

/// Reads events until the pod's DELETED event, or fails after 30 s.
async fn collect(
    mut s: tonic::Streaming<cri::ContainerEventResponse>,
    pod: String,
) -> Result<Vec<(String, i32)>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, s.message())
            .await
            .context("events: timed out")??
            .context("events: stream ended")?;
        ensure!(
            ev.created_at > 0 && ev.pod_sandbox_status.is_some(),
            "{ev:?}"
        );
        let done = ev.container_id == pod
            && ev.container_event_type == ContainerEventType::ContainerDeletedEvent as i32;
        out.push((ev.container_id, ev.container_event_type));
        if done {
            return Ok(out);
        }
    }
}

stats_test!(events_in_order_for_two_subscribers, events_body);
async fn events_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let mut subs = Vec::new();
    for _ in 0..2 {
        subs.push(
            c.get_container_events(GetEventsRequest {})
                .await?
                .into_inner(),
        );
    }
    let pod = t.pod(&mut c, "events").await?;
    let id = t
        .run(&mut c, &pod, &t.spec("sleeper").cmd(&["sleep", "300"]))
        .await?;
    // The status snapshot of STARTED shows the container running.
    rpc::stop(&mut c, &id, 0).await?;
    rpc::remove(&mut c, &id).await?;
    prpc::stop(&mut c, &pod.id).await?;
    prpc::remove(&mut c, &pod.id).await?;
    let mut got = Vec::new();
    for s in subs {
        got.push(collect(s, pod.id.clone()).await?);
    }
    use ContainerEventType::*;
    let want = vec![
        (pod.id.clone(), ContainerCreatedEvent as i32),
        (pod.id.clone(), ContainerStartedEvent as i32),
        (id.clone(), ContainerCreatedEvent as i32),
        (id.clone(), ContainerStartedEvent as i32),
        (id.clone(), ContainerStoppedEvent as i32),
        (id.clone(), ContainerDeletedEvent as i32),
        (pod.id.clone(), ContainerStoppedEvent as i32),
        (pod.id.clone(), ContainerDeletedEvent as i32),
    ];
    for g in &got {
        if *g != want {
            bail!("events {g:?}, want {want:?}");
        }
    }
    drop(c);
    t.finish().await
}

stats_test!(exit_is_an_event_without_a_call, exit_body);
async fn exit_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "exits").await?;
    let mut s = c
        .get_container_events(GetEventsRequest {})
        .await?
        .into_inner();
    let id = t
        .run(&mut c, &pod, &t.spec("quick").sh("sleep 1; exit 3"))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, s.message())
            .await
            .context("no STOPPED event within 20 s")??
            .context("stream ended")?;
        if ev.container_id == id
            && ev.container_event_type == ContainerEventType::ContainerStoppedEvent as i32
        {
            let st = ev
                .containers_statuses
                .iter()
                .find(|s| s.id == id)
                .context("snapshot")?;
            ensure!(st.exit_code == 3, "{st:?}");
            break;
        }
    }
    drop(s);
    drop(c);
    t.finish().await
}

/// `GET /metrics` over a plain TCP connection; answers the body.
async fn scrape(addr: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    ensure!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    Ok(body.to_string())
}

/// Every line is a comment (`# HELP`, `# TYPE`, `# EOF`) or `name{labels} number`.
fn parse_prometheus(text: &str) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix('#') {
            ensure!(
                c.starts_with(" HELP ") || c.starts_with(" TYPE ") || c == " EOF",
                "bad comment {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .context(format!("no value: {line:?}"))?;
        let value: f64 = value.parse().context(format!("bad value: {line:?}"))?;
        let name = series.split('{').next().unwrap_or_default();
        ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            ensure!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels {line:?}"
            );
        }
        out.push((series.to_string(), value));
    }
    Ok(out)
}

stats_test!(metrics_endpoint_serves_prometheus_text, metrics_body);
async fn metrics_body() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let t = CtrTest::start_with(&format!("[metrics]\naddress = \"{addr}\"\n"), Vec::new()).await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "metrics").await?;
    t.run(&mut c, &pod, &t.spec("sleeper").cmd(&["sleep", "300"]))
        .await?;
    let series = parse_prometheus(&scrape(&addr).await?)?;
    let get = |s: &str| series.iter().find(|(n, _)| n == s).map(|(_, v)| *v);
    ensure!(
        get("berth_pods{state=\"ready\"}") == Some(1.0),
        "{series:?}"
    );
    ensure!(
        get("berth_containers{state=\"running\"}") == Some(1.0),
        "{series:?}"
    );
    ensure!(get("berth_monitors") == Some(1.0), "{series:?}");
    ensure!(get("berth_leaked_resources") == Some(0.0), "{series:?}");
    ensure!(
        get("berth_image_pulls_total").is_some_and(|v| v >= 1.0),
        "{series:?}"
    );
    let runs =
        "berth_rpc_requests_total{method=\"/runtime.v1.RuntimeService/RunPodSandbox\",code=\"OK\"}";
    ensure!(get(runs) == Some(1.0), "{series:?}");
    ensure!(
        series
            .iter()
            .any(|(n, _)| n.starts_with("berth_rpc_duration_seconds_bucket{")),
        "{series:?}"
    );
    drop(c);
    t.finish().await
}
