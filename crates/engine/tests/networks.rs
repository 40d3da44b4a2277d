//! Named networks as the engine sees them, on the fake ports: connect/disconnect a pod
//! (running: through the network port; stopped: only its record), and a pod that joins
//! another pod's network namespace (no network of its own to set up or tear down).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_core::pod::networks::{PodNetOptions, PodNetwork};
use berth_engine::testing::{Env, pod_spec};
use berth_engine::{ErrorKind, PodSpec};

fn held_net(env: &Env) -> Vec<String> {
    env.ledger
        .held()
        .into_iter()
        .filter(|h| h.starts_with("net:"))
        .collect()
}

#[tokio::test]
async fn connect_and_disconnect_follow_the_record() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let pod = engine.run_pod(pod_spec("a")).await.unwrap();
    let net1 = PodNetwork {
        id: "n1".into(),
        aliases: vec!["x".into()],
    };
    let a = engine.connect_network(&pod, net1.clone()).await.unwrap();
    assert_eq!(a.unwrap().network, "n1");
    let rec = engine.pod(&pod).unwrap();
    // The default network stays eth0; n1 comes after it.
    let ids: Vec<&str> = rec.net.networks.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["", "n1"]);
    assert!(rec.attachments.iter().any(|a| a.network == "n1"));
    assert!(held_net(&env).contains(&format!("net:{pod}@n1")));

    engine.disconnect_network(&pod, "n1").await.unwrap();
    assert!(!held_net(&env).contains(&format!("net:{pod}@n1")));
    let rec = engine.pod(&pod).unwrap();
    assert!(rec.attachments.iter().all(|a| a.network != "n1"));
    let e = engine.disconnect_network(&pod, "n1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // Stopped: only the record changes (the network is attached when the pod runs again).
    engine.stop_pod(&pod).await.unwrap();
    assert!(held_net(&env).is_empty(), "{:?}", held_net(&env));
    assert!(engine.connect_network(&pod, net1).await.unwrap().is_none());
    assert!(held_net(&env).is_empty());
    assert_eq!(engine.pod(&pod).unwrap().net.networks.len(), 2);
    engine.remove_pod(&pod).await.unwrap();
}

#[tokio::test]
async fn a_pod_joins_a_running_pods_network() {
    let env = Env::new();
    let engine = env.engine_with_busybox().await;
    let owner = engine.run_pod(pod_spec("owner")).await.unwrap();
    let spec = |name: &str, join: &str| PodSpec {
        net: PodNetOptions {
            join: Some(join.to_string()),
            ..Default::default()
        },
        ..pod_spec(name)
    };
    let guest = engine.run_pod(spec("guest", &owner)).await.unwrap();
    // Only the owner was set up on the network.
    assert_eq!(held_net(&env), [format!("net:{owner}")]);
    let rec = engine.pod(&guest).unwrap();
    assert!(rec.ip.is_none() && rec.attachments.is_empty());
    let e = engine
        .connect_network(&guest, PodNetwork::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    engine.remove_pod(&guest).await.unwrap();
    assert_eq!(held_net(&env), [format!("net:{owner}")]);

    // The owner stopped: nobody can join it.
    engine.stop_pod(&owner).await.unwrap();
    let e = engine.run_pod(spec("late", &owner)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    engine.remove_pod(&owner).await.unwrap();
}
