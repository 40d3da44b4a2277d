//! Creations whose answer never reached the client. Running a pod and creating a container
//! run their transaction in a task of its own, so a client that goes away (or whose deadline
//! passes: a front door drops the request's future, as tonic does at `grpc-timeout`) does
//! not abort a half-built pod or container. When the finished transaction finds nobody waiting for its answer, the object
//! is marked here, and the next identical request (the kubelet's retry) gets it, once, as
//! CRI-O's resource store does. Every other request for a name in use is AlreadyExists.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use crate::EngineError;

/// Ids of created objects whose creation answer was lost.
#[derive(Debug, Default)]
pub struct Undelivered(Mutex<HashSet<String>>);

impl Undelivered {
    pub fn mark(&self, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
    }

    /// True (once) when `id`'s creation answer was lost.
    pub fn take(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
    }
}

/// Runs `work` to completion in its own task and returns its result. When the caller is
/// dropped before the result arrives, `lost` gets the successful result instead. `hold`
/// (the object's lock) is released only after that, so a retry waiting for the lock sees
/// the mark.
pub async fn run_detached<T, H, F, L>(
    what: &'static str,
    hold: H,
    work: F,
    lost: L,
) -> Result<T, EngineError>
where
    T: Send + 'static,
    H: Send + 'static,
    F: Future<Output = Result<T, EngineError>> + Send + 'static,
    L: FnOnce(&T) + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let out = work.await;
        if let Err(Ok(value)) = tx.send(out) {
            tracing::info!(
                "{what}: the client went away before the answer; the next identical request gets it"
            );
            lost(&value);
        }
        drop(hold);
    });
    rx.await.unwrap_or_else(|_| {
        Err(EngineError::Internal(format!(
            "{what}: the task ended early"
        )))
    })
}
