//! Skip helpers: integration tests need root and some host binaries. When a requirement is
//! missing they print one `SKIP <test>: <why>` line and return early (test passes).
//!
//! ```ignore
//! if berth_tests::skip::unless_root_and(&["docker-registry", "skopeo"], "pull_by_tag") { return Ok(()); }
//! ```

use std::path::PathBuf;

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why the test cannot run here, if it cannot: not root or a binary missing.
pub fn missing(bins: &[&str], need_root: bool) -> Option<String> {
    if need_root && !is_root() {
        return Some("needs root".into());
    }
    let gone: Vec<&str> = bins
        .iter()
        .copied()
        .filter(|b| which(b).is_none())
        .collect();
    if gone.is_empty() {
        None
    } else {
        Some(format!(
            "missing binaries: {} (run scripts/install-deps.sh)",
            gone.join(", ")
        ))
    }
}

/// Prints a SKIP line and returns true when `test` must be skipped.
pub fn skip_unless(test: &str, bins: &[&str], need_root: bool) -> bool {
    match missing(bins, need_root) {
        Some(why) => {
            println!("SKIP {test}: {why}");
            eprintln!("SKIP {test}: {why}");
            true
        }
        None => false,
    }
}

/// The usual requirement of the image tests: root, a registry and skopeo.
pub fn unless_registry(test: &str) -> bool {
    skip_unless(test, &["docker-registry", "skopeo"], true)
}
