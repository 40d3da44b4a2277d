//! Bench harness (not a test): berthd side by side with the Debian containerd, both driven
//! through the same CRI client over their unix sockets, against one local registry.
//!
//! Phases are subcommands of the `bench` binary; `pull` is the first. A new phase (pods,
//! containers) is a module with a `run` that starts a [`env::BenchEnv`], measures with a
//! [`stats::Comparison`] per operation, prints its tables and shuts the env down.

pub mod containerd;
pub mod containers;
pub mod containers_report;
pub mod daemon;
pub mod docker_api;
pub mod docker_api_report;
pub mod dockerd;
pub mod env;
pub mod host_cleanup;
pub mod images;
pub mod lifecycle;
pub mod lifecycle_report;
pub mod list_stats;
pub mod pods;
pub mod procmem;
pub mod pull;
pub mod rpc_trace;
pub mod scale;
pub mod scale_report;
pub mod side_by_side;
pub mod stats;
pub mod streaming;
pub mod streaming_report;
pub mod text_image;
pub mod uds;

pub use env::{BenchEnv, EnvOptions};
pub use stats::{Comparison, Runtime};

/// `git rev-parse --short HEAD` of the workspace, with `-dirty` when files are modified.
pub fn git_rev() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(crate::workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), for the report: the machine is
/// shared, and the absolute times depend on it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// The lines every side-by-side report starts with: both runtimes' versions, the workspace
/// commit and the machine's load (absolute times depend on it).
pub fn print_header(versions: &(String, String)) {
    println!();
    println!("berthd:     {}", versions.0);
    println!(
        "containerd: {} [{}]",
        versions.1,
        containerd::containerd_bin().display()
    );
    println!("workspace:  git {}", git_rev());
    println!("load:       {}", loadavg());
}
