//! Pod user namespaces (`NamespaceOption.userns_options`) over berthd's socket: what Status
//! reports per handler, the mappings RunPodSandbox and CreateContainer accept and refuse,
//! and that nothing is left behind by a refused pod.
//!
//! berth's own runtime does not run pods in a user namespace yet (Status says
//! `user_namespaces = false` for every handler), so mode POD is refused up front with
//! InvalidArgument; NODE (hostUsers: true) runs as before.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_tests::containers::{CtrTest, logs, rpc};
use berth_tests::cri::{NamespaceMode, StatusRequest};
use berth_tests::pods::{PodSpec, rpc as prpc};
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
/// The kubelet's pick for a pod: container 0 → host 65536·k, 65536 ids.
const KUBELET: &[(u32, u32, u32)] = &[(0, 65536 * 3, 65536)];

ctr_test!(user_namespace_options_are_checked, userns_body);
async fn userns_body() -> Result<()> {
    let t = CtrTest::start().await?;
    let mut c = t.rt().await?;
    let st = c
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner();
    for h in &st.runtime_handlers {
        ensure!(
            h.features.is_some_and(|f| !f.user_namespaces),
            "handler {:?} claims user namespaces: {:?}",
            h.name,
            h.features
        );
    }

    // Refused before anything is created.
    let net = &t.t.net;
    for (name, spec, want) in [
        (
            "pod-mode",
            PodSpec::new("userns-pod", net).userns(NamespaceMode::Pod, KUBELET, KUBELET),
            "cannot run pods in a user namespace",
        ),
        (
            "target",
            PodSpec::new("userns-target", net).userns(NamespaceMode::Target, &[], &[]),
            "mode TARGET is not supported",
        ),
        (
            "missing",
            PodSpec::new("userns-missing", net).userns(NamespaceMode::Pod, KUBELET, &[]),
            "gid mappings are missing",
        ),
        (
            "overlap",
            PodSpec::new("userns-overlap", net).userns(
                NamespaceMode::Pod,
                &[(0, 65536, 65536), (1000, 300_000, 10)],
                KUBELET,
            ),
            "overlap on the container side",
        ),
    ] {
        let e = prpc::run(&mut c, &spec.build())
            .await
            .err()
            .with_context(|| format!("{name}: RunPodSandbox succeeded"))?;
        ensure!(
            e.code() == Code::InvalidArgument && e.message().contains(want),
            "{name}: {:?} {}",
            e.code(),
            e.message()
        );
    }
    let pods = c
        .list_pod_sandbox(berth_tests::cri::ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    ensure!(pods.is_empty(), "refused pods left records: {pods:?}");

    // NODE: the host's user namespace, as without options.
    let pod = t
        .pod_from(
            &mut c,
            PodSpec::new("userns-node", net).userns(NamespaceMode::Node, &[], &[]),
        )
        .await?;
    let s = t
        .spec("node")
        .sh("cat /proc/self/uid_map")
        .userns(NamespaceMode::Node, &[], &[]);
    let id = t.run(&mut c, &pod, &s).await?;
    let st = rpc::wait_exited(&mut c, &id, WAIT).await?;
    let out = logs::messages(&logs::read(&pod.log_path(&s))?, "stdout");
    let map: Vec<&str> = out
        .first()
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    ensure!(
        st.exit_code == 0 && map == ["0", "0", "4294967295"],
        "uid_map in a NODE pod: {out:?}"
    );
    // A container cannot ask for a user namespace its pod does not have.
    let other = t
        .spec("other")
        .sh("true")
        .userns(NamespaceMode::Pod, KUBELET, KUBELET);
    let e = rpc::create(&mut c, &pod.id, &other.config, &pod.config)
        .await
        .err()
        .context("a container asking for other mappings than its pod's was created")?;
    ensure!(
        e.code() == Code::InvalidArgument && e.message().contains("differs from its pod's"),
        "{:?} {}",
        e.code(),
        e.message()
    );
    t.finish().await
}
