//! Hostile tars: nothing may be written (or linked) outside the destination.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::EntryType;

use super::{Scratch, Tar, lstat, require_root};
use crate::unpack::UnpackError;

/// Fails the test, after removing it, if `path` (outside the scratch dir) got created.
fn assert_absent_on_host(path: &Path) {
    if fs::symlink_metadata(path).is_ok() {
        let _ = fs::remove_file(path);
        panic!("{} was written outside the layer root", path.display());
    }
}

#[test]
fn parent_traversal_is_refused() {
    for name in [&b"../evil"[..], b"a/../../evil", b"./../evil", b"/../evil"] {
        let s = Scratch::new();
        let mut t = Tar::new();
        t.raw(EntryType::Regular, name, b"", b"pwned");
        let err = s.unpack(t).unwrap_err();
        assert!(matches!(err, UnpackError::PathEscapes { .. }), "{err}");
        assert!(
            err.to_string().contains(&*String::from_utf8_lossy(name)),
            "{err}"
        );
        assert!(!s.outer.join("evil").exists());
    }
}

#[test]
fn dot_dot_that_stays_inside_is_fine() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.raw(EntryType::Regular, b"a/../b", b"", b"ok");
    s.unpack(t).unwrap();
    assert_eq!(fs::read(s.path("b")).unwrap(), b"ok");
}

#[test]
fn absolute_names_land_inside_dest() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.raw(EntryType::Regular, b"/etc/x", b"", b"inside");
    s.unpack(t).unwrap();
    assert_eq!(fs::read(s.path("etc/x")).unwrap(), b"inside");
}

#[test]
fn symlink_to_host_root_is_resolved_inside_dest() {
    let s = Scratch::new();
    let unique = format!("berth-unpack-evil-{}", std::process::id());
    let mut t = Tar::new();
    t.symlink("link", "/");
    t.raw(
        EntryType::Regular,
        format!("link/etc/{unique}").as_bytes(),
        b"",
        b"x",
    );
    let result = s.unpack(t);
    assert_absent_on_host(&Path::new("/etc").join(&unique));
    result.unwrap();
    assert_eq!(fs::read(s.path(&format!("etc/{unique}"))).unwrap(), b"x");
    assert!(lstat(&s.path("link")).file_type().is_symlink());
}

#[test]
fn symlink_to_parent_is_clamped_at_dest() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.symlink("up", "..");
    t.raw(EntryType::Regular, b"up/evil", b"", b"x");
    t.symlink("deep/up", "../../../..");
    t.raw(EntryType::Regular, b"deep/up/evil2", b"", b"y");
    s.unpack(t).unwrap();
    assert!(!s.outer.join("evil").exists());
    assert!(!s.outer.join("evil2").exists());
    assert_eq!(fs::read(s.path("evil")).unwrap(), b"x");
    assert_eq!(fs::read(s.path("evil2")).unwrap(), b"y");
}

#[test]
fn symlinked_parent_to_outside_directory_is_not_written_through() {
    let s = Scratch::new();
    fs::create_dir(s.outer.join("victim")).unwrap();
    let mut t = Tar::new();
    t.symlink("v", "../victim");
    t.raw(EntryType::Regular, b"v/planted", b"", b"x");
    t.raw(EntryType::Directory, b"v/newdir/", b"", b"");
    s.unpack(t).unwrap();
    assert_eq!(fs::read_dir(s.outer.join("victim")).unwrap().count(), 0);
    assert!(s.path("victim/planted").is_file());
    assert!(s.path("victim/newdir").is_dir());
}

#[test]
fn hardlink_escaping_the_root_is_refused() {
    for target in [&b"../../etc/passwd"[..], b"a/../../../etc/passwd"] {
        let s = Scratch::new();
        let mut t = Tar::new();
        t.raw(EntryType::Link, b"passwd", target, b"");
        let err = s.unpack(t).unwrap_err();
        assert!(matches!(err, UnpackError::BadHardlink { .. }), "{err}");
        assert!(err.to_string().contains("passwd"), "{err}");
        assert!(fs::symlink_metadata(s.path("passwd")).is_err());
    }
}

#[test]
fn hardlink_to_a_file_not_in_this_layer_is_refused() {
    let s = Scratch::new();
    fs::write(s.outer.join("secret"), b"TOP SECRET").unwrap();
    // The host's /etc/passwd through an absolute name, and an outside file through a
    // symlinked parent: neither was created by this layer.
    let mut t = Tar::new();
    t.raw(EntryType::Link, b"h1", b"/etc/passwd", b"");
    assert!(matches!(
        s.unpack(t).unwrap_err(),
        UnpackError::BadHardlink { .. }
    ));

    let s = Scratch::new();
    fs::write(s.outer.join("secret"), b"TOP SECRET").unwrap();
    let mut t = Tar::new();
    t.symlink("d", "..");
    t.raw(EntryType::Link, b"h2", b"d/secret", b"");
    assert!(matches!(
        s.unpack(t).unwrap_err(),
        UnpackError::BadHardlink { .. }
    ));
    assert!(fs::symlink_metadata(s.path("h2")).is_err());
}

#[test]
fn hardlink_to_an_outward_symlink_links_the_symlink_itself() {
    let s = Scratch::new();
    fs::write(s.outer.join("secret"), b"TOP SECRET").unwrap();
    let mut t = Tar::new();
    t.symlink("s", "../secret");
    t.symlink("abs", "/etc/passwd");
    t.hardlink("h", "s");
    t.hardlink("h-abs", "abs");
    s.unpack(t).unwrap();

    let secret_ino = lstat(&s.outer.join("secret")).ino();
    for (link, of) in [("h", "s"), ("h-abs", "abs")] {
        let md = lstat(&s.path(link));
        assert!(md.file_type().is_symlink(), "{link} must stay a symlink");
        assert_eq!(md.ino(), lstat(&s.path(of)).ino());
        assert_ne!(md.ino(), secret_ino);
    }
    assert_eq!(lstat(&s.outer.join("secret")).nlink(), 1);
}

#[test]
fn bad_whiteout_names_are_refused() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.raw(EntryType::Regular, b"a/.wh..", b"", b"");
    let err = s.unpack(t).unwrap_err();
    assert!(matches!(err, UnpackError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("a/.wh.."), "{err}");
}

#[test]
fn whiteout_through_an_outward_symlink_stays_inside() {
    require_root!();
    let s = Scratch::new();
    fs::write(s.outer.join("victim"), b"keep me").unwrap();
    let mut t = Tar::new();
    t.symlink("up", "..");
    t.raw(EntryType::Regular, b"up/.wh.victim", b"", b"");
    t.raw(EntryType::Regular, b"up/.wh..wh..opq", b"", b"");
    s.unpack(t).unwrap();
    assert_eq!(fs::read(s.outer.join("victim")).unwrap(), b"keep me");
    assert!(fs::symlink_metadata(s.path("victim")).is_ok());
    assert!(
        xattr::get(&s.outer, "trusted.overlay.opaque")
            .unwrap()
            .is_none()
    );
}

#[test]
fn file_under_a_regular_file_is_an_error_naming_the_entry() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("f", 0o644, b"x");
    t.raw(EntryType::Regular, b"f/g", b"", b"y");
    let err = s.unpack(t).unwrap_err();
    assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err}");
    assert!(err.to_string().contains("f/g"), "{err}");
}

#[test]
fn symlink_loops_are_an_error() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.symlink("a", "b");
    t.symlink("b", "a");
    t.raw(EntryType::Regular, b"a/x", b"", b"y");
    assert!(matches!(
        s.unpack(t).unwrap_err(),
        UnpackError::SymlinkLoop { .. }
    ));
}
