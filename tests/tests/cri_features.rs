//! The optional CRI features berthd reports in `Status` and honours: SupplementalGroupsPolicy
//! (Merge/Strict, with `ContainerStatus.user`) and recursive read-only mounts per runtime
//! handler. Each test has its own berthd and registry and ends with [`CtrTest::finish`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::containers::{CtrTest, logs, rpc};
use berth_tests::cri::{MountPropagation, StatusRequest, SupplementalGroupsPolicy};
use berth_tests::pods::PodSpec;
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

ctr_test!(supplemental_groups_policy_merge_and_strict, groups_body);
async fn groups_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let st = c
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    ensure!(
        st.features
            .as_ref()
            .is_some_and(|f| f.supplemental_groups_policy),
        "Status features: {:?}",
        st.features
    );
    let pod = t.pod(&mut c, "groups").await?;
    // The image's /etc/group makes tester (uid 1000) a member of staff (50).
    for (name, policy, want) in [
        (
            "merge",
            SupplementalGroupsPolicy::Merge,
            vec![50, 3000, 4000],
        ),
        ("strict", SupplementalGroupsPolicy::Strict, vec![3000, 4000]),
    ] {
        let s = t
            .spec(name)
            .sh("id -u; id -g; id -G")
            .user(1000)
            .group(3000)
            .groups(&[4000])
            .groups_policy(policy);
        let id = t.run(&mut c, &pod, &s).await?;
        let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
        let out = logs::messages(&logs::read(&pod.log_path(&s))?, "stdout");
        ensure!(st.exit_code == 0 && out.len() == 3, "{name}: {out:?}");
        let groups: BTreeSet<i64> = out[2]
            .split(' ')
            .map(|g| g.parse().context("id -G"))
            .collect::<Result<_>>()?;
        ensure!(
            out[0] == "1000" && out[1] == "3000" && groups == want.iter().copied().collect(),
            "{name}: id gave {out:?}, want groups {want:?}"
        );
        let user = st
            .user
            .and_then(|u| u.linux)
            .with_context(|| format!("{name}: ContainerStatus.user is missing"))?;
        ensure!(
            user.uid == 1000 && user.gid == 3000 && user.supplemental_groups == want,
            "{name}: ContainerStatus.user {user:?}, want 1000/3000/{want:?}"
        );
    }
    t.finish().await
}

/// A tmpfs mounted below a host dir, unmounted when dropped (also on failure).
struct SubMount(PathBuf);

impl SubMount {
    fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mount tmpfs on {}", dir.display()))?;
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for SubMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

ctr_test!(recursive_read_only_mounts, rro_body);
async fn rro_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let st = c
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    let rro = |name: &str| {
        st.runtime_handlers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| h.features)
            .is_some_and(|f| f.recursive_read_only_mounts)
    };
    // berth's own runtime, and runc (1.1 lists `rro` in `runc features`); crun 1.8 has no
    // `features` command, so berthd cannot know and says no.
    ensure!(
        rro("") && rro("berth") && rro("runc") && !rro("crun"),
        "handlers: {:?}",
        st.runtime_handlers
    );

    let data = t.t.d.dir().join("rro-data");
    std::fs::create_dir_all(&data)?;
    let sub = SubMount::new(&data.join("sub"))?;
    let host = data.to_str().unwrap_or_default();
    let probe = "(echo x > /data/top) 2>/dev/null && echo top-writable || echo top-ro; \
                 (echo x > /data/sub/f) 2>/dev/null && echo sub-writable || echo sub-ro";

    // Plain readonly leaves the submount writable: what rro is for.
    for (handler, rro_on, want) in [
        ("", false, ["top-ro", "sub-writable"]),
        ("", true, ["top-ro", "sub-ro"]),
        ("runc", true, ["top-ro", "sub-ro"]),
    ] {
        let name = format!(
            "rro-{}-{rro_on}",
            if handler.is_empty() { "berth" } else { handler }
        );
        let pod = t
            .pod_with_handler(&mut c, PodSpec::new(&name, &t.t.net), handler)
            .await?;
        let mut s = t.spec("probe").sh(probe).mount(host, "/data", true);
        if rro_on {
            s = s.recursive_read_only();
        }
        let id = t.run(&mut c, &pod, &s).await?;
        let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
        let out = logs::messages(&logs::read(&pod.log_path(&s))?, "stdout");
        ensure!(
            st.exit_code == 0 && out == want,
            "{name}: {out:?}, want {want:?}"
        );
        ensure!(
            st.mounts
                .first()
                .is_some_and(|m| m.recursive_read_only == rro_on),
            "{name}: status mounts {:?}",
            st.mounts
        );
        let _ = std::fs::remove_file(data.join("sub/f"));
    }
    ensure!(!data.join("top").exists());

    // Refused up front: rro without readonly, with non-private propagation, and on a
    // handler that cannot do it.
    let pod = t.pod(&mut c, "rro-bad").await?;
    let crun = t
        .pod_with_handler(&mut c, PodSpec::new("rro-crun", &t.t.net), "crun")
        .await?;
    for (pod, spec, what) in [
        (
            &pod,
            t.spec("rw")
                .sh("true")
                .mount(host, "/data", false)
                .recursive_read_only(),
            "readonly",
        ),
        (
            &pod,
            t.spec("slave")
                .sh("true")
                .mount(host, "/data", true)
                .propagation(MountPropagation::PropagationHostToContainer)
                .recursive_read_only(),
            "private propagation",
        ),
        (
            &crun,
            t.spec("crun")
                .sh("true")
                .mount(host, "/data", true)
                .recursive_read_only(),
            "cannot do",
        ),
    ] {
        let e = rpc::create(&mut c, &pod.id, &spec.config, &pod.config)
            .await
            .err()
            .with_context(|| format!("{what}: CreateContainer succeeded"))?;
        ensure!(
            e.code() == Code::InvalidArgument
                && e.message().contains("recursive_read_only")
                && e.message().contains(what),
            "{what}: {:?} {}",
            e.code(),
            e.message()
        );
    }
    drop(sub);
    t.finish().await
}
