//! Probes what each runtime handler can do on this node (for `Status` and request checks):
//! berth's own runtime from the kernel version, external OCI runtimes from their
//! `features` command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_core::handler_features::{HandlerFeatures, kernel_version};

/// How long an OCI runtime's `features` command may take before it counts as absent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The running kernel's (major, minor).
pub fn kernel() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    kernel_version(release.trim())
}

/// Features by handler name: "berth" (berth's own runtime, also the "" handler) and each
/// configured OCI runtime.
pub fn probe(oci_runtimes: &BTreeMap<String, PathBuf>) -> BTreeMap<String, HandlerFeatures> {
    let k = kernel();
    let mut out = BTreeMap::from([("berth".to_string(), HandlerFeatures::berth(k))]);
    for (name, bin) in oci_runtimes {
        let doc = oci_features(bin);
        if doc.is_none() {
            tracing::info!(handler = %name, binary = %bin.display(), "the OCI runtime has no usable `features` command; reporting no optional features for it");
        }
        out.insert(name.clone(), HandlerFeatures::oci(doc.as_ref(), k));
    }
    out
}

/// `<bin> features` as JSON, None when it fails, hangs or prints no JSON.
fn oci_features(bin: &Path) -> Option<serde_json::Value> {
    let mut child = Command::new(bin)
        .arg("features")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}
