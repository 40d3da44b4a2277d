//! The container endpoints over a real engine on fake ports: the request → pod and
//! container mapping, names, lookups, filters, Docker's errors, and nothing held after rm.

use berth_engine::testing::Env;
use http::{Method, StatusCode};

use crate::DockerApi;
use crate::test_support::{api, body_json, call};

async fn create(
    api: &DockerApi,
    name: &str,
    body: serde_json::Value,
) -> Result<String, crate::error::ApiError> {
    let c = call(Method::POST, "/containers/create", &format!("name={name}"));
    let r = super::create::create(&c, api, body.to_string().as_bytes()).await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    Ok(body_json(r).await["Id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn create_list_inspect_remove() {
    let env = Env::new();
    let api = api(&env).await;
    let body = serde_json::json!({
        "Image": "busybox",
        "Cmd": ["sleep", "60"],
        "Env": ["A=1"],
        "Labels": {"app": "web"},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}, "Memory": 67108864}
    });
    let id = create(&api, "web", body.clone()).await.unwrap();
    assert_eq!(id.len(), 64);

    // The pod and the container carry the Docker API's label; the mapping reached them.
    let rec = api.runtime.container(&id).unwrap();
    assert_eq!(rec.labels.get("io.berth.api").unwrap(), "docker");
    assert_eq!(rec.labels.get("app").unwrap(), "web");
    assert_eq!(rec.config.args, vec!["sleep", "60"]);
    assert_eq!(rec.config.envs, vec![("A".to_string(), "1".to_string())]);
    assert_eq!(rec.config.resources.memory_limit_in_bytes, 64 << 20);
    let pod = api.runtime.pod(&rec.pod_id).unwrap();
    assert_eq!(
        (pod.name.as_str(), pod.namespace.as_str()),
        ("web", "docker")
    );
    assert_eq!(pod.port_mappings[0].host_port, 8080);

    // Names are unique.
    let e = create(&api, "web", body.clone()).await.unwrap_err();
    assert_eq!(e.status, StatusCode::CONFLICT);
    assert!(
        e.message
            .contains(&format!("\"/web\" is already in use by container \"{id}\"")),
        "{}",
        e.message
    );
    let e = create(&api, "-bad", body.clone()).await.unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    let e = create(&api, "x2", serde_json::json!({"Image": "nosuch"}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (StatusCode::NOT_FOUND, "No such image: nosuch:latest")
    );

    // Lookups: name, /name, prefix, full id.
    for key in ["web", "/web", &id[..6], &id] {
        assert_eq!(super::find(&api, key).unwrap().id, id, "{key}");
    }
    assert_eq!(
        super::find(&api, "nope").unwrap_err().message,
        "No such container: nope"
    );

    super::lifecycle::start(&api, "web").await.unwrap();
    let list = |q: &'static str| {
        let api = api.clone();
        async move {
            let r = super::list::list(&call(Method::GET, "/containers/json", q), &api)
                .await
                .unwrap();
            body_json(r).await
        }
    };
    let l = list("").await;
    assert_eq!(l[0]["Names"][0], "/web");
    assert_eq!(l[0]["State"], "running");
    assert_eq!(l[0]["Ports"][0]["PublicPort"], 8080);
    assert_eq!(l[0]["Labels"], serde_json::json!({"app": "web"}));
    assert_eq!(
        list("filters=%7B%22status%22%3A%5B%22exited%22%5D%7D").await,
        serde_json::json!([])
    );
    assert_eq!(
        list("filters=%7B%22label%22%3A%5B%22app%3Dweb%22%5D%7D")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let r = super::inspect::inspect(&api, "web").await.unwrap();
    let i = body_json(r).await;
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["Name"], "/web");
    assert_eq!(i["State"]["Running"], true);
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sleep", "60"]));
    assert_eq!(i["HostConfig"]["Memory"], 67108864);
    assert_eq!(
        i["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        "8080"
    );

    // A running container goes only with force.
    let e = super::lifecycle::delete(&call(Method::DELETE, "", ""), &api, "web")
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::CONFLICT);
    assert!(
        e.message
            .starts_with("You cannot remove a running container"),
        "{}",
        e.message
    );
    let r = super::lifecycle::delete(&call(Method::DELETE, "", "force=1"), &api, "web")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(api.runtime.list_containers().await.is_empty());
    assert!(api.runtime.list_pods().is_empty());
    assert!(
        env.ledger.held().is_empty(),
        "held: {:?}",
        env.ledger.held()
    );
}
