//! Images made in the store rather than pulled: import of a tarball, commit of an overlay
//! upper dir (whiteouts and opaque dirs turned into OCI entries and back), save and load
//! round trips, and push to a real local registry then pull into a fresh store. Root only
//! (snapshots keep owners, whiteouts are device nodes, opaque marks are trusted xattrs).

mod common;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use berth_core::Reference;
use berth_core::image::{
    ChangeKind, CommitRequest, ImageStore, ImportRequest, NoProgress, PushEvent, PushProgress,
};
use berth_image::Store;
use nix::sys::stat::{Mode, SFlag, mknod};
use serde_json::json;

fn r(s: &str) -> Reference {
    s.parse().expect("reference")
}

fn root_only() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (device nodes, trusted xattrs, file owners)");
        return true;
    }
    false
}

async fn open(root: &Path) -> Arc<Store> {
    Store::open(&common::config(root, vec![]))
        .await
        .expect("open store")
}

/// A plain tar of `files` (a root filesystem).
fn rootfs_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

/// A container's upper dir over the imported image: a new file, a deleted file (0:0 char
/// device), an opaque directory with one new file.
fn upper_dir(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).expect("mkdir");
    std::fs::write(dir.join("hello"), b"hello\n").expect("write");
    mknod(&dir.join("etc/gone"), SFlag::S_IFCHR, Mode::empty(), 0).expect("mknod");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    xattr::set(dir.join("data"), "trusted.overlay.opaque", b"y").expect("opaque");
    std::fs::write(dir.join("data/fresh"), b"new").expect("write");
    // The runtime's empty mount point: left out of the layer.
    std::fs::write(dir.join("etc/hosts"), b"").expect("write");
}

/// The entry names of a gzip layer blob.
fn layer_names(blob: &Path) -> Vec<String> {
    let f = std::fs::File::open(blob).expect("open blob");
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

struct Events(std::sync::Mutex<Vec<PushEvent>>);

impl PushProgress for Events {
    fn event(&self, e: PushEvent) {
        self.0.lock().expect("lock").push(e);
    }
}

#[tokio::test]
async fn import_commit_diff_save_load() {
    if root_only() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(&tmp.path().join("store")).await;

    // import
    let tar = rootfs_tar(&[
        ("etc/gone", b"bye"),
        ("etc/keep", b"keep"),
        ("data/old", b"old"),
    ]);
    let base = store
        .import(
            ImportRequest {
                config: json!({"Cmd": ["sh"]}),
                comment: String::new(),
                tag: Some(r("base:v1")),
            },
            Box::new(std::io::Cursor::new(tar)),
        )
        .await
        .expect("import");
    assert_eq!(base.snapshots.len(), 1);
    assert_eq!(
        std::fs::read(base.snapshots[0].join("etc/keep")).expect("file"),
        b"keep"
    );
    let junk = store
        .import(
            ImportRequest {
                config: json!({}),
                comment: String::new(),
                tag: None,
            },
            Box::new(std::io::Cursor::new(b"not a tar".to_vec())),
        )
        .await;
    assert!(
        matches!(junk, Err(berth_core::image::ImageError::InvalidArgument(_))),
        "{junk:?}"
    );

    // diff and commit
    let upper = tmp.path().join("upper");
    upper_dir(&upper);
    let changes = store
        .changes(&upper, &base.snapshots)
        .await
        .expect("changes");
    let got: Vec<(String, ChangeKind)> = changes.into_iter().map(|c| (c.path, c.kind)).collect();
    assert!(
        got.contains(&("/etc/gone".into(), ChangeKind::Deleted)),
        "{got:?}"
    );
    assert!(
        got.contains(&("/hello".into(), ChangeKind::Added)),
        "{got:?}"
    );
    assert!(
        got.contains(&("/data".into(), ChangeKind::Deleted)),
        "{got:?}"
    );
    assert!(!got.iter().any(|(p, _)| p == "/etc/hosts"), "{got:?}");

    let img = store
        .commit(CommitRequest {
            upper: Some(upper.clone()),
            parent: Some(base.id.clone()),
            created_by: None,
            config: json!({"Cmd": ["cat", "/hello"]}),
            container: "c1".into(),
            comment: "made in a test".into(),
            author: "me".into(),
            tag: Some(r("img:v1")),
        })
        .await
        .expect("commit");
    assert_eq!(img.diff_ids.len(), 2);
    assert_eq!(img.diff_ids[0], base.diff_ids[0]);
    assert_eq!(img.config["config"]["Cmd"], json!(["cat", "/hello"]));
    assert_eq!(img.config["history"].as_array().map(Vec::len), Some(2));
    // The layer holds OCI whiteouts; its snapshot has them in overlay form again.
    let blobs = tmp.path().join("store/images/blobs/sha256");
    let names: Vec<String> = std::fs::read_dir(&blobs)
        .expect("blobs")
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            let p = e.path();
            let mut head = [0u8; 2];
            let gz = std::fs::File::open(&p)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && head == [0x1f, 0x8b];
            if gz { layer_names(&p) } else { Vec::new() }
        })
        .collect();
    for want in ["etc/.wh.gone", "data/.wh..wh..opq", "data/fresh", "hello"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "etc/hosts"), "{names:?}");
    let top = &img.snapshots[1];
    let gone = std::fs::symlink_metadata(top.join("etc/gone")).expect("whiteout");
    assert!(gone.file_type().is_char_device());
    assert_eq!(
        xattr::get(top.join("data"), "trusted.overlay.opaque").expect("xattr"),
        Some(b"y".to_vec())
    );

    // save both, remove them, load them back: same ids and names.
    let archive = tmp.path().join("images.tar");
    let out = std::fs::File::create(&archive).expect("create");
    store
        .save(vec!["img:v1".into(), "base:v1".into()], Box::new(out))
        .await
        .expect("save");
    store.remove("img:v1").await.expect("rmi");
    store.remove("base:v1").await.expect("rmi");
    assert!(store.list().is_empty());
    let input = std::fs::File::open(&archive).expect("open");
    let loaded = store.load(Box::new(input)).await.expect("load");
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].tags, vec!["docker.io/library/img:v1".to_string()]);
    assert_eq!(loaded[1].id, base.id);
    let again = store.find("img:v1").expect("loaded image");
    assert_eq!(again.diff_ids, img.diff_ids);
    assert_eq!(
        std::fs::read(again.snapshots[1].join("hello")).expect("file"),
        b"hello\n"
    );
    let bad = store
        .load(Box::new(std::io::Cursor::new(rootfs_tar(&[("x", b"y")]))))
        .await;
    assert!(
        matches!(bad, Err(berth_core::image::ImageError::InvalidArgument(_))),
        "{bad:?}"
    );

    // export of a tree keeps what is there.
    let exported = tmp.path().join("export.tar");
    let out = std::fs::File::create(&exported).expect("create");
    store
        .export_tree(&again.snapshots[0], Box::new(out))
        .await
        .expect("export");
    let mut a = tar::Archive::new(std::fs::File::open(&exported).expect("open"));
    let names: Vec<String> = a
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"etc/keep".to_string()), "{names:?}");
}

#[tokio::test]
async fn push_then_pull_into_a_fresh_store() {
    if common::skip() {
        return;
    }
    let reg = common::Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(&tmp.path().join("a")).await;
    let name = format!("{}/made:v1", reg.host);
    let img = store
        .import(
            ImportRequest {
                config: json!({"Cmd": ["cat", "/x"]}),
                comment: String::new(),
                tag: Some(r(&name)),
            },
            Box::new(std::io::Cursor::new(rootfs_tar(&[("x", b"pushed")]))),
        )
        .await
        .expect("import");
    let events = Events(Default::default());
    store.push(&r(&name), None, &events).await.expect("push");
    let ev = events.0.lock().expect("lock").clone();
    assert!(
        matches!(ev.first(), Some(PushEvent::Preparing(l)) if l.len() == 1),
        "{ev:?}"
    );
    assert!(matches!(ev[1], PushEvent::LayerPushed(_)), "{ev:?}");
    assert!(
        matches!(ev.last(), Some(PushEvent::Pushed { .. })),
        "{ev:?}"
    );
    // Again: every blob is there already.
    let events = Events(Default::default());
    store
        .push(&r(&name), None, &events)
        .await
        .expect("push again");
    assert!(
        events
            .0
            .lock()
            .expect("lock")
            .iter()
            .any(|e| matches!(e, PushEvent::LayerExists(_)))
    );

    let other = open(&tmp.path().join("b")).await;
    let pulled = other
        .pull_with_progress(&r(&name), None, &NoProgress)
        .await
        .expect("pull");
    assert_eq!(pulled.id, img.id);
    assert_eq!(
        std::fs::read(pulled.snapshots[0].join("x")).expect("file"),
        b"pushed"
    );
    let missing = store
        .push(&r(&format!("{}/nope:v1", reg.host)), None, &events)
        .await;
    assert!(
        matches!(missing, Err(berth_core::image::ImageError::NotFound(_))),
        "{missing:?}"
    );
}
