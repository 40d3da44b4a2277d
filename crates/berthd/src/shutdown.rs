//! SIGTERM/SIGINT → one shutdown signal every listener waits on.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Returns a receiver that flips to `true` on the first SIGTERM or SIGINT.
pub fn on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = which,
            "shutting down: draining in-flight RPCs; workloads are left running"
        );
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Resolves when `rx` turns true (or its sender is gone).
pub async fn wait(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
