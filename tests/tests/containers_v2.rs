//! Container resources on a cgroup-v2-only node (run in the VM lane, see scripts/test.sh):
//! OOM kill under memory.max, pids limits (pod parent and `unified`), cpu.max/cpu.weight
//! and live updates. Skipped where /sys/fs/cgroup is not cgroup2 with the memory
//! controller (the host mounts v1).

use anyhow::{Context, Result, ensure};
use berth_tests::containers::{CtrTest, cgroup_v2_only, read_cgroup, resources, rpc};
use berth_tests::{finish, skip};

fn v2_with_memory() -> bool {
    cgroup_v2_only()
        && std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
}

macro_rules! v2_test {
    ($name:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if !v2_with_memory() {
                println!(
                    "SKIP {}: /sys/fs/cgroup is not cgroup2 with the memory controller",
                    stringify!($name)
                );
                return;
            }
            let bins = ["docker-registry", "skopeo", "busybox", "nft", "ip"];
            if skip::skip_unless(stringify!($name), &bins, true) {
                return;
            }
            finish($body().await);
        }
    };
}

v2_test!(memory_max_leads_to_oom_killed_v2, oom_body);
async fn oom_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "oom-v2").await?;
    resources::oom_killed(&t, &mut c, &pod).await?;
    t.finish().await
}

v2_test!(pids_cpu_unified_and_update_v2, limits_body);
async fn limits_body() -> Result<()> {
    let t = CtrTest::start().await?;
    resources::limit_parent_pids(&t, 20)?;
    let mut c = t.rt().await?;
    let pod = t.pod(&mut c, "limits-v2").await?;
    resources::pids_limited(&t, &mut c, &pod, 20).await?;
    resources::cpu_and_update(&t, &mut c, &pod).await?;

    // `unified` entries go to the container's cgroup as they are; swap = limit means
    // memory.swap.max 0 on v2.
    let s = t
        .spec("unified")
        .cmd(&["sleep", "3600"])
        .memory(48 << 20)
        .unified("pids.max", "7")
        .unified("memory.high", "40960000");
    let id = t.run(&mut c, &pod, &s).await?;
    let path = resources::cgroups_path(&mut c, &id).await?;
    ensure!(read_cgroup("pids", &path, "pids.max")? == "7");
    ensure!(read_cgroup("memory", &path, "memory.high")? == "40960000");
    ensure!(read_cgroup("memory", &path, "memory.max")? == (48u64 << 20).to_string());
    if let Ok(swap) = read_cgroup("memory", &path, "memory.swap.max") {
        ensure!(swap == "0", "memory.swap.max {swap}");
    }
    let r = rpc::exec_sync(
        &mut c,
        &id,
        &[
            "sh",
            "-c",
            // The sleeps must not hold the exec's stdout/stderr: ExecSync waits for them to
            // close (bounded by exec_drain_timeout_secs) and fails past the bound.
            "for i in 1 2 3 4 5 6 7 8 9; do sleep 30 >/dev/null 2>&1 & done; echo done",
        ],
        20,
    )
    .await
    .context("ExecSync")?;
    ensure!(
        r.exit_code != 0 && String::from_utf8_lossy(&r.stderr).contains("fork"),
        "9 forks under pids.max 7: exit {} stderr {:?}",
        r.exit_code,
        String::from_utf8_lossy(&r.stderr)
    );
    rpc::stop(&mut c, &id, 0).await?;
    t.finish().await
}
