//! `berthd reset`: leaves the node without berth's network: the built-in bridge, its nft
//! table, the veths and addresses of pods that are gone, and the namespace pins of pods
//! under the run dir. For taking a node out of service or cleaning up after tests.
//!
//! It runs only while no berthd holds the root and run dirs (the same locks `berthd run`
//! takes), so it never pulls the network from under a serving daemon. Containers are not
//! stopped here: remove pods over the CRI first (`crictl rmp -af`) while berthd runs;
//! reset removes whatever that left.

use std::path::Path;

use anyhow::Context;
use berth_core::config::Config;

use crate::lock::InstanceLock;

pub fn run(cfg: &Config) -> anyhow::Result<()> {
    let _root_lock = InstanceLock::acquire(&cfg.root_dir, "root_dir")
        .context("berthd reset needs berthd stopped")?;
    let _run_lock = InstanceLock::acquire(&cfg.run_dir, "run_dir")
        .context("berthd reset needs berthd stopped")?;
    let mut done = unpin_pods(&cfg.run_dir)?;
    if let Some(bridge) = crate::ports::bridge_network(cfg)? {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        done.extend(
            rt.block_on(bridge.reset())
                .context("removing the built-in network")?,
        );
    }
    for line in &done {
        println!("removed {line}");
    }
    if done.is_empty() {
        println!("nothing to remove");
    }
    Ok(())
}

/// Unmounts the namespace pins `<run_dir>/pods/<id>/ns/*` and removes the emptied pin dirs.
/// A pin keeps its namespace (and the pod's veth end in it) alive after the pod's processes
/// are gone.
fn unpin_pods(run_dir: &Path) -> anyhow::Result<Vec<String>> {
    let pods = run_dir.join("pods");
    let entries = match std::fs::read_dir(&pods) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", pods.display())),
    };
    let mut done = Vec::new();
    for pod in entries {
        let pod = pod.with_context(|| format!("reading {}", pods.display()))?;
        let ns_dir = pod.path().join("ns");
        let Ok(pins) = std::fs::read_dir(&ns_dir) else {
            continue;
        };
        for pin in pins.flatten() {
            berth_linux::ns::unmount_all(&pin.path())?;
        }
        // The pin dir is a (shared) mount of its own.
        berth_linux::ns::unmount_all(&ns_dir)?;
        std::fs::remove_dir_all(&ns_dir)
            .with_context(|| format!("removing {}", ns_dir.display()))?;
        done.push(format!("namespace pins {}", ns_dir.display()));
    }
    Ok(done)
}
