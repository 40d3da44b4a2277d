use std::os::unix::fs::PermissionsExt;

use super::*;

fn view() -> (tempfile::TempDir, tempfile::TempDir, FsView) {
    let root = tempfile::tempdir().unwrap();
    let vol = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/conf.d")).unwrap();
    std::fs::write(root.path().join("etc/hostname"), "box\n").unwrap();
    std::fs::write(root.path().join("etc/conf.d/a"), "aaa").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.path().join("etc/name")).unwrap();
    std::fs::create_dir_all(root.path().join("data")).unwrap();
    let v = FsView {
        rootfs: root.path().to_path_buf(),
        mounts: vec![("/data".into(), vol.path().to_path_buf(), false)],
    };
    (root, vol, v)
}

fn names(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn stat_and_archive() {
    let (_r, _v, view) = view();
    let f = LinuxFiles;
    let s = f.stat(&view, "/etc/hostname").unwrap();
    assert_eq!(
        (s.name.as_str(), s.size, s.is_dir()),
        ("hostname", 4, false)
    );
    let s = f.stat(&view, "/etc/name").unwrap();
    assert_eq!(s.link_target, "/etc/hostname");
    assert!(s.mode & PathStat::MODE_SYMLINK != 0);
    assert!(f.stat(&view, "/etc").unwrap().is_dir());
    assert!(matches!(
        f.stat(&view, "/nope"),
        Err(FilesError::NotFound(_))
    ));

    let mut out = Vec::new();
    f.archive(&view, "/etc", &mut out).unwrap();
    let n = names(&out);
    assert!(n.contains(&"etc/conf.d/a".to_string()), "{n:?}");
    assert!(n.contains(&"etc/name".to_string()), "{n:?}");
    let mut out = Vec::new();
    f.archive(&view, "/etc/hostname", &mut out).unwrap();
    assert_eq!(names(&out), vec!["hostname".to_string()]);
}

#[test]
fn extract_into_rootfs_and_mounts() {
    let (root, vol, view) = view();
    let f = LinuxFiles;
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o640);
        h.set_uid(1234);
        h.set_cksum();
        b.append_data(&mut h, "new/file.txt", &b"hello"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        l.set_cksum();
        b.append_link(&mut l, "new/hard.txt", "new/file.txt")
            .unwrap();
        // A name that tries to climb out stays inside.
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        let raw = b"x/../../../../escape";
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_cksum();
        b.append(&h, &b"no"[..]).unwrap();
        b.finish().unwrap();
    }
    f.extract(
        &view,
        "/data",
        &mut &tar_bytes[..],
        ExtractOptions::default(),
    )
    .unwrap();
    let written = vol.path().join("new/file.txt");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello");
    assert_eq!(
        std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Owned by the container's root unless copyUIDGID.
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), 0);
    assert_eq!(
        std::fs::read_to_string(vol.path().join("new/hard.txt")).unwrap(),
        "hello"
    );
    // `..` stops at the container's root: the file lands at /escape in the rootfs.
    assert!(root.path().join("escape").exists());

    let e = f.extract(
        &view,
        "/etc/hostname",
        &mut &tar_bytes[..],
        ExtractOptions::default(),
    );
    assert!(matches!(e, Err(FilesError::InvalidArgument(_))), "{e:?}");
    let e = f.extract(
        &view,
        "/missing",
        &mut &tar_bytes[..],
        ExtractOptions::default(),
    );
    assert!(matches!(e, Err(FilesError::NotFound(_))), "{e:?}");
}
