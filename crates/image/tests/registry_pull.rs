//! The store against a real local registry (docker-registry + skopeo). Skipped, with a
//! message, when not root or when those binaries are missing.

mod common;

use std::sync::Arc;

use berth_core::config::RegistryConfig;
use berth_core::image::{ImageError, ImageStore};
use berth_core::{Digest, Reference};
use berth_image::Store;
use common::{Built, Layout, Registry, entries, layer};

fn r(s: &str) -> Reference {
    s.parse().expect("reference")
}

/// Builds a two-layer image (a shared base + `extra`) and pushes it as `name:tag`.
fn push_image(reg: &Registry, name: &str, tag: &str, extra: &[u8], user: &str) -> Built {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(dir.path());
    let base = layer(&[
        ("bin/hello", b"#!/bin/sh\necho hello\n"),
        ("etc/os-release", b"ID=berth\n"),
    ]);
    let top = layer(&[("app/data", extra)]);
    let (desc, built) = layout.image(&[&base, &top], user, "amd64");
    layout.tag(desc, tag);
    reg.push(dir.path(), tag, name, false);
    built
}

async fn open(root: &std::path::Path, regs: Vec<(String, RegistryConfig)>) -> Arc<Store> {
    Store::open(&common::config(root, regs))
        .await
        .expect("open store")
}

#[tokio::test]
async fn pull_by_tag_then_by_digest_without_network() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    let built = push_image(&reg, "app", "v1", b"one", "1000:1000");
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path(), vec![]).await;
    let name = format!("{}/app:v1", reg.host);

    let img = store.pull(&r(&name), None).await.expect("pull by tag");
    assert_eq!(img.id, built.config);
    assert_eq!(img.repo_tags, vec![name.clone()]);
    let by_digest = format!("{}/app@{}", reg.host, built.manifest);
    assert_eq!(img.repo_digests, vec![by_digest.clone()]);
    assert_eq!(img.user, "1000:1000");
    assert_eq!(img.diff_ids.len(), 2);
    assert_eq!(img.snapshots.len(), 2);
    assert_eq!(
        std::fs::read(img.snapshots[0].join("bin/hello")).expect("file"),
        b"#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        std::fs::read(img.snapshots[1].join("app/data")).expect("file"),
        b"one"
    );
    assert!(img.snapshots[1].starts_with(tmp.path().join("images/snapshots")));
    assert_eq!(img.config["config"]["Cmd"][0], "/bin/sh");
    assert!(img.size > 0 && !img.pinned);
    assert!(entries(&tmp.path().join("images/tmp")).is_empty());

    // find by every kind of name
    for n in [
        name.clone(),
        by_digest.clone(),
        img.id.to_string(),
        img.id.hex()[..12].to_string(),
    ] {
        assert_eq!(store.find(&n).map(|i| i.id), Some(img.id.clone()), "{n}");
    }
    assert!(store.find(&format!("{}/app:v2", reg.host)).is_none());

    // Pulling again by tag resolves the tag but downloads nothing.
    let layer_path = format!("/v2/app/blobs/{}", built.layers[1]);
    assert_eq!(reg.gets(&layer_path), 1);
    store.pull(&r(&name), None).await.expect("pull again");
    assert_eq!(reg.gets(&layer_path), 1);

    // A digest reference with complete content needs no network at all.
    drop(reg);
    let again = store
        .pull(&r(&by_digest), None)
        .await
        .expect("pull by digest offline");
    assert_eq!(again.id, img.id);
    assert_eq!(store.list().len(), 1);
}

#[tokio::test]
async fn pull_by_digest_from_a_fresh_store_and_unknown_names() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    let built = push_image(&reg, "dig", "t", b"x", "");
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path(), vec![]).await;
    let img = store
        .pull(&r(&format!("{}/dig@{}", reg.host, built.manifest)), None)
        .await
        .expect("pull by digest");
    assert!(img.repo_tags.is_empty());
    assert_eq!(img.id, built.config);

    let e = store
        .pull(&r(&format!("{}/dig:nope", reg.host)), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::RemoteNotFound { .. }), "{e}");
    assert!(e.to_string().contains("manifest unknown"), "{e}");
    let wrong = Digest::of(b"not there");
    let e = store
        .pull(&r(&format!("{}/dig@{wrong}", reg.host)), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::RemoteNotFound { .. }), "{e}");
}

#[tokio::test]
async fn concurrent_pulls_share_one_download() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    let built = push_image(&reg, "shared", "latest", &vec![7u8; 3 << 20], "");
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path(), vec![]).await;
    let name = r(&format!("{}/shared", reg.host));
    let (a, b, c) = tokio::join!(
        store.pull(&name, None),
        store.pull(&name, None),
        store.pull(&name, None)
    );
    let (a, b, c) = (a.expect("a"), b.expect("b"), c.expect("c"));
    assert_eq!((&a.id, &b.id), (&c.id, &c.id));
    for l in &built.layers {
        assert_eq!(
            reg.gets(&format!("/v2/shared/blobs/{l}")),
            1,
            "layer {l} fetched more than once"
        );
    }
    assert_eq!(store.list().len(), 1);
}

#[tokio::test]
async fn corrupted_blob_is_rejected_and_nothing_is_kept() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    let built = push_image(&reg, "bad", "latest", b"precious", "");
    // Same length, different bytes: only the digest check can notice.
    let file = reg.blob_file(&built.layers[1]);
    let mut data = std::fs::read(&file).expect("read blob");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&file, &data).expect("corrupt blob");

    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path(), vec![]).await;
    let e = store
        .pull(&r(&format!("{}/bad", reg.host)), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::Verification { .. }), "{e}");
    assert!(e.to_string().contains(&built.layers[1].to_string()), "{e}");
    let root = tmp.path().join("images");
    assert!(store.list().is_empty());
    assert!(
        !root
            .join("blobs/sha256")
            .join(built.layers[1].hex())
            .exists()
    );
    assert!(
        entries(&root.join("tmp")).is_empty(),
        "{:?}",
        entries(&root.join("tmp"))
    );
    assert!(
        entries(&root.join("snapshots"))
            .iter()
            .all(|n| !n.starts_with("tmp-"))
    );
}

#[tokio::test]
async fn mirrors_are_tried_in_order_then_upstream() {
    if common::skip() {
        return;
    }
    let upstream = Registry::start();
    let mirror = Registry::start();
    let dead = format!("127.0.0.1:{}", common::free_port());
    // Only the mirror has `onlymirror`; only upstream has `onlyupstream`.
    let m = push_image(&mirror, "onlymirror", "latest", b"m", "");
    let u = push_image(&upstream, "onlyupstream", "latest", b"u", "");
    let regs = vec![(
        upstream.host.clone(),
        RegistryConfig {
            mirrors: vec![format!("http://{dead}"), mirror.host.clone()],
            ..Default::default()
        },
    )];
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path(), regs).await;
    let img = store
        .pull(&r(&format!("{}/onlymirror", upstream.host)), None)
        .await
        .expect("pull through the mirror");
    assert_eq!(img.id, m.config);
    assert_eq!(
        img.repo_tags,
        vec![format!("{}/onlymirror:latest", upstream.host)]
    );
    let img = store
        .pull(&r(&format!("{}/onlyupstream", upstream.host)), None)
        .await
        .expect("fall back to upstream");
    assert_eq!(img.id, u.config);
    assert_eq!(
        upstream.gets(&format!("/v2/onlyupstream/blobs/{}", u.layers[1])),
        1
    );
}

#[tokio::test]
async fn remove_collects_unshared_content() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    let a = push_image(&reg, "a", "latest", b"only in a", "");
    let b = push_image(&reg, "b", "latest", b"only in b", "");
    assert_eq!(a.layers[0], b.layers[0], "base layer is shared");
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path(), vec![]).await;
    let ia = store
        .pull(&r(&format!("{}/a", reg.host)), None)
        .await
        .expect("pull a");
    let ib = store
        .pull(&r(&format!("{}/b", reg.host)), None)
        .await
        .expect("pull b");
    // A second tag on a: removing one tag keeps the image.
    let ia2 = store
        .pull(&r(&format!("{}/a:latest", reg.host)), None)
        .await
        .expect("again");
    assert_eq!(ia.id, ia2.id);
    let root = tmp.path().join("images");
    let blobs = root.join("blobs/sha256");
    let before = store.fs_usage().expect("usage");
    assert!(
        before.used_bytes > 0 && before.inodes_used > 10,
        "{before:?}"
    );

    store
        .remove(&format!("{}/a:latest", reg.host))
        .await
        .expect("remove a");
    assert!(store.find(&ia.id.to_string()).is_none());
    assert!(!blobs.join(a.layers[1].hex()).exists());
    assert!(!ia.snapshots[1].exists());
    assert!(
        blobs.join(a.layers[0].hex()).exists(),
        "shared layer must stay"
    );
    assert!(ib.snapshots[0].exists() && ib.snapshots[1].exists());
    let after = store.fs_usage().expect("usage");
    assert!(after.used_bytes < before.used_bytes);

    // Not found is fine; removing by id deletes the image with all its names.
    store
        .remove("nothing-here:latest")
        .await
        .expect("idempotent");
    store
        .remove(&ib.id.hex()[..10])
        .await
        .expect("remove b by id prefix");
    assert!(store.list().is_empty());
    assert!(entries(&blobs).is_empty(), "{:?}", entries(&blobs));
    assert!(entries(&root.join("snapshots")).is_empty());
}

#[tokio::test]
async fn reopen_keeps_images_and_drops_incomplete_ones() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    push_image(&reg, "keep", "latest", b"k", "");
    push_image(&reg, "lose", "latest", b"l", "");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("images");
    let (keep, lose) = {
        let store = open(tmp.path(), vec![]).await;
        let k = store
            .pull(&r(&format!("{}/keep", reg.host)), None)
            .await
            .expect("keep");
        let l = store
            .pull(&r(&format!("{}/lose", reg.host)), None)
            .await
            .expect("lose");
        (k, l)
    };
    // Simulate a crash: leftovers of interrupted work and a snapshot lost.
    std::fs::write(root.join("tmp/blob-partial"), b"half").expect("write");
    std::fs::create_dir_all(root.join("snapshots/tmp-123/fs/x")).expect("mkdir");
    std::fs::remove_dir_all(lose.snapshots[1].parent().expect("parent")).expect("rm snapshot");

    let store = open(tmp.path(), vec![]).await;
    let list = store.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0], keep);
    assert!(entries(&root.join("tmp")).is_empty());
    assert!(!root.join("snapshots/tmp-123").exists());
    // The dropped image's own content was collected; the shared base stayed.
    assert!(!lose.snapshots[0].exists() || lose.snapshots[0] == keep.snapshots[0]);
    assert_eq!(entries(&root.join("snapshots")).len(), 2);
    assert_eq!(store.root(), root);
}

#[tokio::test]
async fn index_is_resolved_for_the_configured_platform() {
    if common::skip() {
        return;
    }
    let reg = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(dir.path());
    let l_amd = layer(&[("arch", b"amd64")]);
    let l_arm = layer(&[("arch", b"arm64")]);
    let (d_amd, b_amd) = layout.image(&[&l_amd], "amd", "amd64");
    let (mut d_arm, b_arm) = layout.image(&[&l_arm], "arm", "arm64");
    d_arm["platform"]["variant"] = "v8".into();
    let index = layout.tag_index(vec![d_amd, d_arm], "multi");
    reg.push(dir.path(), "multi", "multi", true);

    for (platform, want, user) in [
        ("linux/amd64", &b_amd, "amd"),
        ("linux/arm64", &b_arm, "arm"),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cfg = common::config(tmp.path(), vec![]);
        cfg.image.platform = platform.into();
        let store = Store::open(&cfg).await.expect("open");
        let img = store
            .pull(&r(&format!("{}/multi:multi", reg.host)), None)
            .await
            .expect("pull");
        assert_eq!(img.id, want.config, "{platform}");
        assert_eq!(img.user, user);
        // The repo digest is the index's, like containerd records it.
        assert_eq!(
            img.repo_digests,
            vec![format!("{}/multi@{index}", reg.host)]
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config(tmp.path(), vec![]);
    cfg.image.platform = "linux/s390x".into();
    let store = Store::open(&cfg).await.expect("open");
    let e = store
        .pull(&r(&format!("{}/multi:multi", reg.host)), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("linux/s390x") && e.to_string().contains("linux/arm64"),
        "{e}"
    );
}
