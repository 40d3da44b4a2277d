//! Faithful reproduction of ordinary entries, whiteouts and the diff id.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use berth_core::Digest;
use filetime::FileTime;
use tar::EntryType;

use super::{MTIME, Scratch, Tar, lstat, mode, require_root};
use crate::unpack::{Compression, unpack_layer};

#[test]
fn regular_files_keep_contents_modes_owners_and_mtimes() {
    require_root!();
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file_owned("bin/su", 0o4755, (1000, 2000), 1_234_567_890, b"su");
    t.file_owned("bin/wall", 0o2711, (0, 5), MTIME, b"wall");
    t.file("etc/shadow", 0o000, b"secret");
    s.unpack(t).unwrap();

    let su = s.path("bin/su");
    assert_eq!(fs::read(&su).unwrap(), b"su");
    assert_eq!(mode(&su), 0o4755);
    let md = lstat(&su);
    assert_eq!((md.uid(), md.gid()), (1000, 2000));
    assert_eq!(md.mtime(), 1_234_567_890);
    assert_eq!(mode(&s.path("bin/wall")), 0o2711);
    assert_eq!(lstat(&s.path("bin/wall")).gid(), 5);
    assert_eq!(mode(&s.path("etc/shadow")), 0);
    assert_eq!(fs::read(s.path("etc/shadow")).unwrap(), b"secret");
    // Implied parent directories.
    assert!(lstat(&s.path("bin")).is_dir());
    assert_eq!(mode(&s.path("bin")), 0o755);
}

#[test]
fn directory_modes_and_times_are_applied_after_their_contents() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.dir_at("ro/", 0o555, 1_000_000);
    t.file("ro/inside", 0o644, b"x");
    t.dir_at("tmp/", 0o1777, 2_000_000);
    t.dir_at("tmp/sub/", 0o2750, 3_000_000);
    t.file("tmp/sub/f", 0o600, b"y");
    s.unpack(t).unwrap();

    assert_eq!(fs::read(s.path("ro/inside")).unwrap(), b"x");
    assert_eq!(mode(&s.path("ro")), 0o555);
    assert_eq!(lstat(&s.path("ro")).mtime(), 1_000_000);
    assert_eq!(mode(&s.path("tmp")), 0o1777);
    assert_eq!(lstat(&s.path("tmp")).mtime(), 2_000_000);
    assert_eq!(mode(&s.path("tmp/sub")), 0o2750);
    assert_eq!(lstat(&s.path("tmp/sub")).mtime(), 3_000_000);
}

#[test]
fn root_entry_updates_the_layer_root() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.dir_at("./", 0o750, 42);
    t.file("./a", 0o644, b"a");
    s.unpack(t).unwrap();
    assert_eq!(mode(&s.dest), 0o750);
    assert_eq!(lstat(&s.dest).mtime(), 42);
    assert!(s.path("a").is_file());
}

#[test]
fn symlinks_and_hardlinks() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("usr/bin/busybox", 0o755, b"bb");
    t.symlink("usr/bin/sh", "busybox");
    t.symlink("abs", "/etc/passwd");
    t.hardlink("usr/bin/ls", "usr/bin/busybox");
    t.hardlink("./usr/bin/cat", "/usr/bin/busybox");
    // A target named through a symlinked directory is the same entry.
    t.symlink("bin", "usr/bin");
    t.hardlink("echo", "bin/busybox");
    s.unpack(t).unwrap();

    let sh = lstat(&s.path("usr/bin/sh"));
    assert!(sh.file_type().is_symlink());
    assert_eq!(sh.mtime(), MTIME as i64);
    assert_eq!(
        fs::read_link(s.path("usr/bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert_eq!(
        fs::read_link(s.path("abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    let bb = lstat(&s.path("usr/bin/busybox")).ino();
    assert_eq!(lstat(&s.path("usr/bin/ls")).ino(), bb);
    assert_eq!(lstat(&s.path("usr/bin/cat")).ino(), bb);
    assert_eq!(lstat(&s.path("echo")).ino(), bb);
    assert_eq!(lstat(&s.path("usr/bin/cat")).nlink(), 4);
}

#[test]
fn whiteout_becomes_a_char_device_0_0() {
    require_root!();
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file(".wh.gone", 0o644, b"");
    t.file("dir/.wh.old", 0o644, b"");
    t.file("dir/.wh..wh.plnk", 0o644, b"");
    s.unpack(t).unwrap();

    for wh in ["gone", "dir/old"] {
        let md = lstat(&s.path(wh));
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&md.file_type()),
            "{wh}"
        );
        assert_eq!(md.rdev(), 0, "{wh}");
    }
    assert!(!s.path(".wh.gone").exists());
    let names: Vec<_> = fs::read_dir(s.path("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["old"]);
}

#[test]
fn opaque_marker_sets_the_overlay_xattr() {
    require_root!();
    let s = Scratch::new();
    let mut t = Tar::new();
    t.dir("kept/", 0o755);
    t.file("kept/.wh..wh..opq", 0o644, b"");
    t.file("absent/.wh..wh..opq", 0o644, b"");
    s.unpack(t).unwrap();

    for dir in ["kept", "absent"] {
        let value = xattr::get(s.path(dir), "trusted.overlay.opaque").unwrap();
        assert_eq!(value.as_deref(), Some(&b"y"[..]), "{dir}");
        assert_eq!(fs::read_dir(s.path(dir)).unwrap().count(), 0, "{dir}");
    }
}

#[test]
fn device_nodes_and_fifos() {
    require_root!();
    let s = Scratch::new();
    let mut t = Tar::new();
    t.node("dev/null", EntryType::Char, 0o666, (1, 3));
    t.node("dev/loop0", EntryType::Block, 0o660, (7, 0));
    t.node("run/fifo", EntryType::Fifo, 0o620, (0, 0));
    s.unpack(t).unwrap();

    use std::os::unix::fs::FileTypeExt;
    let null = lstat(&s.path("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(nix::sys::stat::major(null.rdev()), 1);
    assert_eq!(nix::sys::stat::minor(null.rdev()), 3);
    assert_eq!(mode(&s.path("dev/null")), 0o666);
    let lp = lstat(&s.path("dev/loop0"));
    assert!(lp.file_type().is_block_device());
    assert_eq!(nix::sys::stat::major(lp.rdev()), 7);
    assert!(lstat(&s.path("run/fifo")).file_type().is_fifo());
    assert_eq!(mode(&s.path("run/fifo")), 0o620);
}

#[test]
fn pax_xattrs_are_kept() {
    require_root!();
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[
        ("SCHILY.xattr.user.foo", b"bar"),
        ("SCHILY.xattr.trusted.t", b"1"),
    ]);
    t.file("f", 0o644, b"data");
    t.pax(&[("SCHILY.xattr.user.d", b"dir"), ("mtime", b"1700000000.5")]);
    t.dir("d/", 0o755);
    s.unpack(t).unwrap();

    assert_eq!(
        xattr::get(s.path("f"), "user.foo").unwrap().as_deref(),
        Some(&b"bar"[..])
    );
    assert_eq!(
        xattr::get(s.path("f"), "trusted.t").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        xattr::get(s.path("d"), "user.d").unwrap().as_deref(),
        Some(&b"dir"[..])
    );
    let md = lstat(&s.path("d"));
    assert_eq!(
        FileTime::from_last_modification_time(&md),
        FileTime::from_unix_time(1_700_000_000, 500_000_000)
    );
}

#[test]
fn diff_id_is_the_sha256_of_the_whole_raw_tar() {
    let mut t = Tar::new();
    t.dir("etc/", 0o755);
    t.file("etc/hosts", 0o644, &vec![b'h'; 3000]);
    let mut raw = t.finish();
    // Record padding after the end-of-archive blocks belongs to the diff id too.
    raw.resize(10240, 0);
    let expected = Digest::of(&raw);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&raw[..], 3).unwrap();

    for (compression, blob) in [
        (Compression::None, raw.clone()),
        (Compression::Gzip, gz),
        (Compression::Zstd, zst),
    ] {
        let s = Scratch::new();
        let layer = unpack_layer(&blob[..], compression, &s.dest).unwrap();
        assert_eq!(layer.diff_id, expected, "{compression:?}");
        assert_eq!(layer.size, raw.len() as u64, "{compression:?}");
        assert_eq!(fs::read(s.path("etc/hosts")).unwrap().len(), 3000);
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = Scratch::new();
    fs::write(s.outer.join("outside"), b"untouched").unwrap();
    let mut t = Tar::new();
    t.file("f", 0o644, b"first");
    t.file("f", 0o600, b"second");
    t.file("was-file", 0o644, b"x");
    t.dir("was-file/", 0o700);
    t.dir("was-dir/", 0o755);
    t.file("was-dir/child", 0o644, b"c");
    t.file("was-dir", 0o644, b"now a file");
    t.dir("d/", 0o755);
    t.file("d/keep", 0o644, b"k");
    t.dir_at("d/", 0o711, 77);
    t.symlink("link", "../outside");
    t.file("link", 0o644, b"replaced");
    s.unpack(t).unwrap();

    assert_eq!(fs::read(s.path("f")).unwrap(), b"second");
    assert_eq!(mode(&s.path("f")), 0o600);
    assert!(lstat(&s.path("was-file")).is_dir());
    assert_eq!(fs::read(s.path("was-dir")).unwrap(), b"now a file");
    assert_eq!(fs::read(s.path("d/keep")).unwrap(), b"k");
    assert_eq!(mode(&s.path("d")), 0o711);
    assert_eq!(lstat(&s.path("d")).mtime(), 77);
    assert!(lstat(&s.path("link")).is_file());
    assert_eq!(fs::read(s.path("link")).unwrap(), b"replaced");
    assert_eq!(fs::read(s.outer.join("outside")).unwrap(), b"untouched");
}
