//! The volume store, the parsing of mount requests, copy-up, and the endpoints over a real
//! engine on fake ports (whose rootfs holds only /etc/passwd).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::Reference;
use berth_core::container::Propagation;
use berth_core::image::ImageStore;
use berth_engine::testing::Env;
use bollard_stubs::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;

use super::copy_up::{copy_up, resolve_in_root};
use super::spec::{Source, clean, parse_bind, parse_mount, plan};
use super::store::{Store, validate_name};
use crate::http::Reply;
use crate::query::Query;
use crate::router::Call;
use crate::{DockerApi, EngineInfo};

#[test]
fn names_like_dockerd() {
    assert!(validate_name("data").is_ok());
    assert!(validate_name("my_vol.1-x").is_ok());
    let e = validate_name("a").unwrap_err();
    assert!(e.message.contains("too short"), "{}", e.message);
    let e = validate_name("-x").unwrap_err();
    assert!(e.message.contains("invalid characters"), "{}", e.message);
    assert!(validate_name("a/b").is_err());
    assert!(validate_name("..").is_err());
    let n = super::store::anonymous_name();
    assert!(n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(n, super::store::anonymous_name());
}

#[test]
fn bind_specs() {
    let p = parse_bind("/tmp:/data:ro").unwrap();
    assert_eq!(
        p.source,
        Source::Bind {
            path: "/tmp".into(),
            create: true
        }
    );
    assert_eq!((p.destination.as_str(), p.readonly), ("/data", true));
    let p = parse_bind("vol:/data/:nocopy,rw").unwrap();
    assert_eq!(
        p.source,
        Source::Volume {
            name: Some("vol".into()),
            labels: BTreeMap::new(),
            no_copy: true
        }
    );
    assert_eq!((p.destination.as_str(), p.readonly), ("/data", false));
    let p = parse_bind("/anon").unwrap();
    assert!(matches!(p.source, Source::Volume { name: None, .. }));
    let p = parse_bind("/h:/c:rslave").unwrap();
    assert_eq!(p.propagation, Propagation::HostToContainer);
    assert!(parse_bind("vol:rel").is_err());
    assert!(parse_bind("vol:/").is_err());
    assert!(parse_bind("/h:/c:bogus").is_err());
    assert!(parse_bind("/h:/c:ro,rw").is_err());
    assert!(parse_bind("/h:/c:nocopy").is_err());
    assert!(parse_bind("a:b:c:d").is_err());
    let e = parse_bind("x:/data").unwrap_err();
    assert!(e.message.contains("too short"), "{}", e.message);
    assert_eq!(clean("/a//b/./c/../d/").as_deref(), Some("/a/b/d"));
    assert_eq!(clean("rel"), None);
}

#[test]
fn mount_specs() {
    let m = Mount {
        typ: Some(MountType::VOLUME),
        target: Some("/data".into()),
        ..Default::default()
    };
    assert!(matches!(
        parse_mount(&m).unwrap().source,
        Source::Volume { name: None, .. }
    ));
    let m = Mount {
        typ: Some(MountType::BIND),
        source: Some("/nonexistent/x".into()),
        target: Some("/data".into()),
        read_only: Some(true),
        ..Default::default()
    };
    let p = parse_mount(&m).unwrap();
    assert!(p.readonly);
    assert_eq!(
        p.source,
        Source::Bind {
            path: "/nonexistent/x".into(),
            create: false
        }
    );
    let m = Mount {
        typ: Some(MountType::TMPFS),
        target: Some("/t".into()),
        ..Default::default()
    };
    assert_eq!(parse_mount(&m).unwrap_err().status, StatusCode::BAD_REQUEST);
    let m = Mount {
        typ: Some(MountType::VOLUME),
        target: Some("/data".into()),
        volume_options: Some(bollard_stubs::models::MountVolumeOptions {
            driver_config: Some(bollard_stubs::models::MountVolumeOptionsDriverConfig {
                name: Some("nfs".into()),
                options: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(parse_mount(&m).unwrap_err().status, StatusCode::NOT_FOUND);
}

#[test]
fn volumes_from_specs() {
    use super::spec::{parse_volumes_from, shared};
    assert_eq!(parse_volumes_from("c1").unwrap(), ("c1", None));
    assert_eq!(parse_volumes_from("c1:ro").unwrap(), ("c1", Some(true)));
    assert_eq!(parse_volumes_from("c1:rw").unwrap(), ("c1", Some(false)));
    assert!(parse_volumes_from("c1:zz").is_err());
    let point = super::MountPoint {
        kind: "volume".into(),
        name: "v1".into(),
        destination: "/d".into(),
        rw: true,
        ..Default::default()
    };
    let p = shared(&point, Some(true));
    assert!(p.readonly && p.destination == "/d");
    assert!(matches!(&p.source, Source::Shared(m) if !m.rw && m.name == "v1"));
    assert!(!shared(&point, None).readonly);
}

#[test]
fn plans_fill_declared_volumes() {
    let body = ContainerCreateBody {
        volumes: Some(vec!["/a".into(), "/b".into()]),
        ..Default::default()
    };
    let host = HostConfig {
        binds: Some(vec!["named:/a".into()]),
        ..Default::default()
    };
    let p = plan(&body, &host, Vec::new(), &["/b/".into(), "/c".into()]).unwrap();
    let dests: Vec<&str> = p.iter().map(|p| p.destination.as_str()).collect();
    assert_eq!(dests, ["/a", "/b", "/c"]);
    assert!(matches!(&p[0].source, Source::Volume { name: Some(n), .. } if n == "named"));
    assert!(matches!(&p[2].source, Source::Volume { name: None, .. }));
    let host = HostConfig {
        binds: Some(vec!["x1:/a".into(), "/h:/a".into()]),
        ..Default::default()
    };
    let e = plan(&body, &host, Vec::new(), &[]).unwrap_err();
    assert_eq!(e.message, "Duplicate mount point: /a");
}

#[test]
fn store_create_list_remove() {
    let dir = Env::new().dir;
    let store = Store::new(dir.path().join("volumes"));
    assert!(store.list().unwrap().is_empty());
    let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let (v, made) = store
        .create("data", labels.clone(), BTreeMap::new())
        .unwrap();
    assert!(made && v.data.is_dir());
    assert!(v.data.ends_with("volumes/data/_data"));
    let (again, made) = store
        .create("data", BTreeMap::new(), BTreeMap::new())
        .unwrap();
    assert!(!made);
    assert_eq!(again.meta.labels, labels);
    std::fs::write(v.data.join("f"), "12345").unwrap();
    // A volume whose json is lost is still listed.
    std::fs::create_dir_all(dir.path().join("volumes/bare/_data")).unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["bare", "data"]);
    assert_eq!(store.remove("data").unwrap(), 5);
    assert!(store.get("data").is_none());
    // A removal cut short is finished by the next listing.
    std::fs::create_dir_all(dir.path().join("volumes/.x.removing/_data")).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(!dir.path().join("volumes/.x.removing").exists());
}

#[test]
fn copy_up_fills_only_empty_volumes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = Env::new().dir;
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("srv/sub")).unwrap();
    std::fs::write(root.join("srv/sub/file"), "hello").unwrap();
    std::fs::set_permissions(
        root.join("srv/sub/file"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("sub/file", root.join("srv/link")).unwrap();
    std::fs::set_permissions(root.join("srv"), std::fs::Permissions::from_mode(0o750)).unwrap();
    // A link that points out of the rootfs resolves inside it.
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/secret"), "no").unwrap();
    std::os::unix::fs::symlink("/srv", root.join("alias")).unwrap();
    std::os::unix::fs::symlink("../../outside", root.join("escape")).unwrap();
    assert_eq!(
        resolve_in_root(&root, "/alias/sub"),
        Some(root.join("srv/sub"))
    );
    assert_eq!(resolve_in_root(&root, "/escape"), None);
    assert_eq!(resolve_in_root(&root, "/missing/x"), None);

    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    assert!(copy_up(&root, "/alias", &data).unwrap());
    assert_eq!(
        std::fs::read_to_string(data.join("sub/file")).unwrap(),
        "hello"
    );
    assert_eq!(
        std::fs::read_link(data.join("link")).unwrap(),
        std::path::Path::new("sub/file")
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&data.join("sub/file")), 0o640);
    assert_eq!(mode(&data), 0o750);
    // Not empty any more: left alone.
    std::fs::write(root.join("srv/new"), "x").unwrap();
    assert!(!copy_up(&root, "/srv", &data).unwrap());
    assert!(!data.join("new").exists());
    // Nothing there in the image: nothing to do.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(!copy_up(&root, "/nothing", &empty).unwrap());
}

fn call(method: Method, path: &str, query: &str) -> Call {
    Call {
        method,
        path: path.to_string(),
        query: Query::parse(Some(query)),
        headers: HeaderMap::new(),
        upgrade: Default::default(),
    }
}

async fn body_json(r: Reply) -> serde_json::Value {
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn api(env: &Env) -> Arc<DockerApi> {
    let engine = env.engine(None).await;
    let r: Reference = "busybox".parse().unwrap();
    env.store.pull(&r, None).await.unwrap();
    DockerApi::new(
        env.store.clone(),
        EngineInfo {
            root_dir: env.dir.path().display().to_string(),
            ..Default::default()
        },
        engine,
        env.dir.path().join("logs"),
    )
}

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
