//! The volume store, the parsing of mount requests and copy-up.

use std::collections::BTreeMap;

use berth_core::container::Propagation;
use berth_engine::testing::Env;
use bollard_stubs::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use http::StatusCode;

use super::copy_up::{copy_up, resolve_in_root};
use super::spec::{Source, clean, parse_bind, parse_mount, plan};
use super::store::{Store, validate_name};

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
            options: BTreeMap::new(),
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
        read_only: Some(true),
        tmpfs_options: Some(bollard_stubs::models::MountTmpfsOptions {
            size_bytes: Some(1 << 20),
            mode: Some(0o1777),
            options: Some(vec![vec!["exec".into()]]),
        }),
        ..Default::default()
    };
    let p = parse_mount(&m).unwrap();
    assert!(p.readonly);
    assert_eq!(
        p.source,
        Source::Tmpfs {
            options: [
                "noexec",
                "nosuid",
                "nodev",
                "size=1048576",
                "mode=1777",
                "exec"
            ]
            .map(String::from)
            .to_vec()
        }
    );
    let m = Mount {
        typ: Some(MountType::TMPFS),
        source: Some("x".into()),
        target: Some("/t".into()),
        ..Default::default()
    };
    assert_eq!(parse_mount(&m).unwrap_err().status, StatusCode::BAD_REQUEST);
    let p = super::spec::parse_tmpfs("/run/", "size=64m,ro").unwrap();
    assert_eq!((p.destination.as_str(), p.readonly), ("/run", true));
    assert!(super::spec::parse_tmpfs("rel", "").is_err());
    let m = Mount {
        typ: Some(MountType::NPIPE),
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
fn local_driver_options() {
    use super::driver::{check_driver, check_options, mount_source};
    let opts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(check_driver("v", "").is_ok() && check_driver("v", "local").is_ok());
    assert_eq!(
        check_driver("v", "nfs").unwrap_err().message,
        "create v: error looking up volume plugin nfs: plugin \"nfs\" not found"
    );
    let bind = opts(&[("type", "none"), ("o", "bind"), ("device", "/srv/x")]);
    assert_eq!(check_options("v", bind.iter()).unwrap(), bind);
    assert!(
        check_options("v", BTreeMap::new().iter())
            .unwrap()
            .is_empty()
    );
    for bad in [
        opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]),
        opts(&[("type", "none"), ("o", "bind"), ("device", "rel")]),
        opts(&[("type", "none"), ("o", "bind,ro"), ("device", "/x")]),
        opts(&[("color", "blue")]),
    ] {
        let e = check_options("v", bad.iter()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let meta = super::store::Meta {
        options: bind,
        ..Default::default()
    };
    let data = std::path::Path::new("/root/volumes/v/_data");
    assert_eq!(mount_source(&meta, data), std::path::Path::new("/srv/x"));
    assert_eq!(mount_source(&Default::default(), data), data);
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
