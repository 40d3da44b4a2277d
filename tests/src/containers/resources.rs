//! Resource scenarios shared by the cgroup v1 (host) and v2 (VM lane) test files: each
//! runs containers in a pod of a [`CtrTest`] and checks what the kernel enforces and what
//! the cgroup files hold, naming v1 or v2 files by what the node mounts.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::{CtrTest, Pod, cgroup_dir, cgroup_v2_only, known_bug, logs, read_cgroup, rpc};
use crate::cri;
use crate::pods::rpc::Runtime;

const WAIT: Duration = Duration::from_secs(60);

/// The container's `cgroupsPath`, from its bundle's config.json (verbose status "bundle").
pub async fn cgroups_path(c: &mut Runtime, id: &str) -> Result<String> {
    let info = rpc::info(c, id).await?;
    let bundle = info["bundle"]
        .as_str()
        .with_context(|| format!("no bundle in verbose info: {info}"))?;
    super::spec_cgroups_path(std::path::Path::new(bundle))
}

/// A 32 MiB limit (swap = limit) and a process that buffers ~100 MB: the kernel OOM-kills
/// it, and ContainerStatus reports reason OOMKilled with exit code 137.
pub async fn oom_killed(t: &CtrTest, c: &mut Runtime, pod: &Pod) -> Result<()> {
    // busybox tail keeps the whole (newline-free) last line in memory.
    let s = t
        .spec("oom")
        .sh("head -c 100000000 /dev/zero | tail")
        .memory(32 << 20);
    let id = t.run(c, pod, &s).await?;
    let path = cgroups_path(c, &id).await?;
    let limit = if cgroup_v2_only() {
        read_cgroup("memory", &path, "memory.max")?
    } else {
        read_cgroup("memory", &path, "memory.limit_in_bytes")?
    };
    ensure!(limit == (32u64 << 20).to_string(), "memory limit {limit}");
    let st = rpc::wait_exited(c, &id, WAIT).await?;
    let out = logs::read(&pod.log_path(&s)).unwrap_or_default();
    ensure!(
        st.reason == "OOMKilled" && st.exit_code == 137,
        "reason {:?} exit {} (want OOMKilled, 137); log {out:?}",
        st.reason,
        st.exit_code
    );
    Ok(())
}

/// CPU period/quota/shares land in the container's cgroup, are visible inside the container
/// too, and UpdateContainerResources changes them (and the memory limit) live.
pub async fn cpu_and_update(t: &CtrTest, c: &mut Runtime, pod: &Pod) -> Result<()> {
    let v2 = cgroup_v2_only();
    let s = t
        .spec("cpu")
        .cmd(&["sleep", "3600"])
        .cpu(100_000, 50_000, 512)
        .memory(128 << 20);
    let id = t.run(c, pod, &s).await?;
    let path = cgroups_path(c, &id).await?;
    let (quota_file, inside) = if v2 {
        ("cpu.max", "/sys/fs/cgroup/cpu.max")
    } else {
        ("cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    };
    let want_quota = |q: u64| {
        if v2 {
            format!("{q} 100000")
        } else {
            q.to_string()
        }
    };
    ensure!(read_cgroup("cpu", &path, quota_file)? == want_quota(50_000));
    if v2 {
        // runc's shares -> weight conversion: 1 + (512 - 2) * 9999 / 262142 = 20.
        ensure!(read_cgroup("cpu", &path, "cpu.weight")? == "20");
    } else {
        ensure!(read_cgroup("cpu", &path, "cpu.cfs_period_us")? == "100000");
        ensure!(read_cgroup("cpu", &path, "cpu.shares")? == "512");
    }
    let seen = rpc::exec_sync(c, &id, &["cat", inside], 10).await;
    let seen = seen
        .map(|r| String::from_utf8_lossy(&r.stdout).trim().to_string())
        .unwrap_or_else(|e| e.message().to_string());
    known_bug(
        seen == want_quota(50_000),
        &format!(
            "the container does not see its own CPU quota at {inside} (runc: it does): {seen:?}"
        ),
    )?;

    let new = cri::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 20_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        memory_swap_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    rpc::update(c, &id, new)
        .await
        .map_err(|s| anyhow::anyhow!("UpdateContainerResources: {s}"))?;
    ensure!(read_cgroup("cpu", &path, quota_file)? == want_quota(20_000));
    let mem = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    ensure!(read_cgroup("memory", &path, mem)? == (64u64 << 20).to_string());
    let st = rpc::status(c, &id).await?;
    let r = st
        .resources
        .and_then(|r| r.linux)
        .context("no resources in status")?;
    ensure!(
        r.cpu_quota == 20_000 && r.memory_limit_in_bytes == 64 << 20,
        "status resources after update: {r:?}"
    );
    // Updating a stopped container only records the values (nothing runs to limit).
    rpc::stop(c, &id, 0).await?;
    let later = cri::LinuxContainerResources {
        cpu_quota: 30_000,
        ..Default::default()
    };
    if let Err(s) = rpc::update(c, &id, later).await {
        bail!("UpdateContainerResources on an exited container: {s}");
    }
    Ok(())
}

/// A pids limit on the pod's cgroup parent (the kubelet's pod-level limit) caps the
/// container: forks fail beyond it. Leftover children are killed with the container.
pub async fn pids_limited(t: &CtrTest, c: &mut Runtime, pod: &Pod, max: u32) -> Result<()> {
    let s = t
        .spec("forker")
        .sh("i=0; while [ $i -lt 60 ]; do sleep 300 & i=$((i+1)); done; echo started-all; sleep 1");
    let id = t.run(c, pod, &s).await?;
    let path = cgroups_path(c, &id).await?;
    let st = rpc::wait_exited(c, &id, WAIT).await?;
    let lines = logs::read(&pod.log_path(&s))?;
    let (out, err) = (
        logs::messages(&lines, "stdout"),
        logs::messages(&lines, "stderr").join("\n"),
    );
    ensure!(
        st.exit_code != 0 && !out.contains(&"started-all".to_string()),
        "60 forks under pids.max {max}: exit {} out {out:?} err {err:?}",
        st.exit_code
    );
    ensure!(err.contains("fork"), "stderr: {err:?}");
    // The background sleeps were in the container's cgroup: once the main process is gone
    // they must be too (containerd's shim kills them when the pod shares the PID ns).
    let procs = cgroup_dir("pids", &path).join("cgroup.procs");
    let until = Instant::now() + Duration::from_secs(5);
    let mut left = String::new();
    while Instant::now() < until {
        left = std::fs::read_to_string(&procs).unwrap_or_default();
        if left.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    known_bug(
        left.trim().is_empty(),
        &format!(
            "processes of an exited container are left running in its cgroup ({} pids in {procs:?}; \
             containerd kills them), and RemoveContainer then fails (EBUSY on the cgroup)",
            left.lines().count()
        ),
    )?;
    // Tolerated above: kill them here so the rest of the test can go on.
    for pid in left.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    Ok(())
}

/// Sets `pids.max` on the test's cgroup parent (created here, before any pod, as the
/// kubelet owns and creates pod parents).
pub fn limit_parent_pids(t: &CtrTest, max: u32) -> Result<()> {
    let dir = cgroup_dir("pids", &t.t.net.cgroup_parent);
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {dir:?}"))?;
    std::fs::write(dir.join("pids.max"), max.to_string())
        .with_context(|| format!("write {dir:?}/pids.max"))
}
