//! The volume endpoints and the container side of volumes over a real engine on fake ports
//! (whose rootfs holds only /etc/passwd).

use berth_engine::testing::Env;
use http::{Method, StatusCode};

use crate::DockerApi;
use crate::test_support::{api, body_json, call};

async fn create(api: &DockerApi, name: &str, body: serde_json::Value) -> String {
    let c = call(Method::POST, "/containers/create", &format!("name={name}"));
    let r = crate::containers::create::create(&c, api, body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    body_json(r).await["Id"].as_str().unwrap().to_string()
}

async fn volume_names(api: &DockerApi, filters: &str) -> Vec<String> {
    let q = format!("filters={}", form_urlencode(filters));
    let r = super::routes::list(&call(Method::GET, "/volumes", &q), api)
        .await
        .unwrap();
    let v = body_json(r).await;
    v["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap().to_string())
        .collect()
}

fn form_urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn containers_hold_their_volumes() {
    let env = Env::new();
    let api = api(&env).await;
    let body = serde_json::json!({
        "Image": "busybox",
        "Cmd": ["true"],
        "Volumes": {"/anon": {}},
        "HostConfig": {"Binds": ["etcvol:/etc"]}
    });
    let id = create(&api, "holder", body).await;
    // The named volume was made on first use and got the image's /etc.
    let data = env.dir.path().join("volumes/etcvol/_data");
    assert!(
        data.join("passwd").is_file(),
        "copy-up into the named volume"
    );
    let st = crate::containers::stored(&api, &api.runtime.container(&id).unwrap());
    assert_eq!(st.mounts.len(), 2);
    let anon = st.mounts[1].name.clone();
    assert_eq!((anon.len(), st.mounts[1].named), (64, false));
    let rec = api.runtime.container(&id).unwrap();
    assert_eq!(rec.config.mounts[0].host_path, data.display().to_string());

    let mut all = volume_names(&api, "").await;
    all.sort();
    let mut want = vec![anon.clone(), "etcvol".to_string()];
    want.sort();
    assert_eq!(all, want);
    assert!(
        volume_names(&api, r#"{"dangling":["true"]}"#)
            .await
            .is_empty()
    );

    // In use: 409 with the user's id; unknown: 404.
    let rm = |name: &str, q: &str| {
        let c = call(Method::DELETE, &format!("/volumes/{name}"), q);
        let api = api.clone();
        let name = name.to_string();
        async move { super::routes::remove(&c, &api, &name).await }
    };
    let e = rm("etcvol", "").await.unwrap_err();
    assert_eq!(e.status, StatusCode::CONFLICT);
    assert_eq!(
        e.message,
        format!("remove etcvol: volume is in use - [{id}]")
    );
    let e = rm("nope", "").await.unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (StatusCode::NOT_FOUND, "get nope: no such volume")
    );
    assert_eq!(
        rm("nope", "force=1").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );

    // rm -v: the anonymous volume goes, the named one stays (and is now dangling).
    let c = call(Method::DELETE, &format!("/containers/{id}"), "v=1");
    crate::containers::lifecycle::delete(&c, &api, &id)
        .await
        .unwrap();
    assert_eq!(volume_names(&api, "").await, ["etcvol"]);
    assert_eq!(
        volume_names(&api, r#"{"dangling":{"true":true}}"#).await,
        ["etcvol"]
    );

    // create with labels; ls filters; prune by label, then all.
    let c = call(Method::POST, "/volumes/create", "");
    let r = super::routes::create(&api, br#"{"Name":"lab","Labels":{"tier":"db"}}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = body_json(r).await;
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Labels"]["tier"], "db");
    drop(c);
    // No name: an anonymous-style one.
    let r = super::routes::create(&api, b"").await.unwrap();
    let anon = body_json(r).await["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64);
    let c = call(Method::DELETE, &format!("/volumes/{anon}"), "");
    super::routes::remove(&c, &api, &anon).await.unwrap();
    assert_eq!(
        volume_names(&api, r#"{"label":["tier=db"]}"#).await,
        ["lab"]
    );
    assert_eq!(volume_names(&api, r#"{"name":["etc"]}"#).await, ["etcvol"]);
    let e = super::routes::create(&api, br#"{"Name":"x2","Driver":"nfs"}"#)
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    let prune = |q: &str| {
        let c = call(Method::POST, "/volumes/prune", q);
        let api = api.clone();
        async move { body_json(super::routes::prune(&c, &api).await.unwrap()).await }
    };
    let q = format!("filters={}", form_urlencode(r#"{"label":["tier"]}"#));
    let p = prune(&q).await;
    assert_eq!(p["VolumesDeleted"], serde_json::json!(["lab"]));
    let q = format!("filters={}", form_urlencode(r#"{"all":["true"]}"#));
    let p = prune(&q).await;
    assert_eq!(p["VolumesDeleted"], serde_json::json!(["etcvol"]));
    assert!(p["SpaceReclaimed"].as_i64().unwrap() > 0);
    assert!(
        std::fs::read_dir(env.dir.path().join("volumes"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn failed_create_leaves_no_anonymous_volume() {
    let env = Env::new();
    let api = api(&env).await;
    let body = serde_json::json!({
        "Image": "busybox",
        "Volumes": {"/anon": {}},
        "HostConfig": {"Memory": 1024}
    });
    let c = call(Method::POST, "/containers/create", "name=bad");
    let e = crate::containers::create::create(&c, &api, body.to_string().as_bytes())
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert!(volume_names(&api, "").await.is_empty());
}
