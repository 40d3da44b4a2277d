//! Integration test harness: a real `berthd` on a temp socket, a real `docker-registry` on
//! 127.0.0.1 and test images built offline from busybox-static.
//!
//! Every process the harness starts carries the env var [`MARK_VAR`] with a value unique to
//! its owner, so leftovers (including grandchildren) can be found and reported after a test.

pub mod bench;
pub mod berthd;
pub mod certs;
pub mod client;
pub mod containers;
pub mod docker;
pub mod docker_runs;
pub mod images;
pub mod pods;
pub mod procs;
pub mod proxy;
pub mod registry;
pub mod skip;
pub mod stream_client;
pub mod streaming;

pub use berthd::{Berthd, BerthdOptions};
pub use images::{BuiltImage, PlatformImage, TestImage};
pub use procs::MARK_VAR;
pub use proxy::SlowProxy;
pub use registry::{PushedImage, Registry, RegistryOptions};

/// Re-export of the CRI types (`runtime.v1`).
pub use berth_api::cri;

use std::path::PathBuf;

/// The workspace root (the parent of the `tests/` crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target dir: `CARGO_TARGET_DIR` (relative to the workspace root) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace_root().join(d),
        _ => workspace_root().join("target"),
    }
}

/// A process-unique id for names and markers: pid + counter + time.
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{t:x}", std::process::id())
}

/// Reserves a free TCP port on 127.0.0.1 (released at once; good enough for tests).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last `lines` lines of a text file ("" when unreadable).
pub fn tail_file(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

/// Ends a test body: on error prints the log tails of the berthd instances the test dropped,
/// then panics with the error chain. Use as `berth_tests::finish(body().await)`.
pub fn finish(result: anyhow::Result<()>) {
    let logs = berthd::take_dropped_logs();
    if let Err(e) = result {
        for l in logs {
            eprintln!("{l}");
        }
        panic!("{e:?}");
    }
}

/// Total bytes of regular files under `dir` (0 when absent).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
