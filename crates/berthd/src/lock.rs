//! One berthd per root: an exclusive flock held for the life of the process.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

pub struct InstanceLock {
    _lock: Flock<File>,
}

impl InstanceLock {
    /// Takes `<dir>/berthd.lock`, or explains who holds it.
    pub fn acquire(dir: &Path, what: &str) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("berthd.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            anyhow::anyhow!(
                "another berthd is already running with {what} {} (lock file {} is held: {errno}); stop it first or give this one other directories",
                dir.display(),
                path.display()
            )
        })?;
        // Record our pid for people debugging; the flock is what counts.
        let _ = lock.set_len(0);
        let _ = fs::write(&path, format!("{}\n", std::process::id()));
        Ok(Self { _lock: lock })
    }
}
