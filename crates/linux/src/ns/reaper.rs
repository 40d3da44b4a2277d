//! One reaper for the pod inits, which are berthd's children (see [`super::init`]): a
//! single tokio task waiting on one pidfd per child, instead of one blocked thread per
//! pod. berthd's thread count then stays the same however many pods run.
//!
//! Why pidfds: readiness of a pidfd (readable once the process has exited) is a plain fd
//! event for tokio's reactor, tied to that one process, so nothing else berthd spawns
//! (nft, CNI plugins, monitors through tokio::process) is reaped by mistake, as a
//! `waitpid(-1)` loop would do.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Child;
use std::sync::Mutex;
use std::sync::mpsc::Sender;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// A child to reap, and who to tell once it is gone.
struct Watch {
    child: Child,
    pidfd: AsyncFd<OwnedFd>,
    done: Sender<()>,
}

#[derive(Debug, Default)]
pub(crate) struct Reaper {
    /// The reaper task's queue; started (again) by the first `watch` that finds it gone.
    tx: Mutex<Option<mpsc::UnboundedSender<Watch>>>,
}

impl Reaper {
    /// Reaps `child` when it exits, then sends on `done`. Must be called within a tokio
    /// runtime (the reaper task runs on it).
    pub fn watch(&self, child: Child, done: Sender<()>) -> io::Result<()> {
        let pidfd = pidfd_open(child.id())?;
        // SAFETY: an OwnedFd's raw fd is valid and stays the same open fd until the
        // AsyncFd (which owns it) is dropped.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let mut w = Watch { child, pidfd, done };
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = tx.as_ref() {
            match queue.send(w) {
                Ok(()) => return Ok(()),
                // The task is gone (its runtime shut down): start another below.
                Err(mpsc::error::SendError(back)) => w = back,
            }
        }
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        queue
            .send(w)
            .map_err(|_| io::Error::other("the reaper task stopped at once"))?;
        *tx = Some(queue);
        Ok(())
    }
}

/// The reaper task: takes new children from `rx` and reaps each as its pidfd turns ready.
/// Ends once `rx` is closed (the `Reaper` dropped) and every child has been reaped.
async fn run(mut rx: mpsc::UnboundedReceiver<Watch>) {
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        tokio::select! {
            w = rx.recv(), if open => match w {
                Some(w) => waiting.push(reap(w)),
                None => open = false,
            },
            Some(()) = waiting.next(), if !waiting.is_empty() => {}
        }
    }
}

async fn reap(mut w: Watch) {
    loop {
        let Ok(mut ready) = w.pidfd.readable().await else {
            break;
        };
        match w.child.try_wait() {
            Ok(None) => ready.clear_ready(),
            Ok(Some(_)) | Err(_) => break,
        }
    }
    let _ = w.done.send(());
}

/// pidfd_open(2): an fd referring to process `pid` (also while it is a zombie).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: pidfd_open takes a pid and flags (none) and returns a new fd or -1; no
    // memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reaps_many_children_on_one_task() {
        let reaper = Reaper::default();
        let mut done = Vec::new();
        for i in 0..20 {
            let child = std::process::Command::new("sh")
                .args(["-c", &format!("exit {}", i % 3)])
                .spawn()
                .expect("spawn sh");
            let pid = child.id();
            let (tx, rx) = std::sync::mpsc::channel();
            reaper.watch(child, tx).expect("watch");
            done.push((pid, rx));
        }
        for (pid, rx) in done {
            tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)))
                .await
                .expect("join")
                .expect("reaped");
            // Reaped: no zombie is left under that pid.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(!stat.contains(") Z "), "pid {pid} is a zombie: {stat}");
        }
    }
}
