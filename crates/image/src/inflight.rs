//! One download or unpack per digest at a time: concurrent pulls that need the same blob
//! or snapshot await the same task. The task runs detached (tokio::spawn), so a cancelled
//! pull does not cancel the work others wait for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use berth_core::image::ImageError;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type Outcome = Result<(), Arc<ImageError>>;

#[derive(Default)]
pub struct InFlight {
    map: Mutex<HashMap<String, Shared<BoxFuture<'static, Outcome>>>>,
}

/// Removes the task's entry when the task ends, even by panic, so a later caller starts
/// afresh instead of inheriting a stale result.
struct Unregister {
    owner: Arc<InFlight>,
    key: String,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.owner
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl InFlight {
    /// Runs `work` for `key` unless a task for `key` is already running, in which case its
    /// outcome is awaited instead (and `work` is dropped unpolled).
    pub async fn run<F>(self: &Arc<Self>, key: String, work: F) -> Result<(), ImageError>
    where
        F: Future<Output = Result<(), ImageError>> + Send + 'static,
    {
        let shared = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let guard = Unregister {
                        owner: self.clone(),
                        key: key.clone(),
                    };
                    let handle = tokio::spawn(async move {
                        let _guard = guard;
                        work.await.map_err(Arc::new)
                    });
                    let s = async move {
                        match handle.await {
                            Ok(r) => r,
                            Err(e) => Err(Arc::new(ImageError::Store(format!("task failed: {e}")))),
                        }
                    }
                    .boxed()
                    .shared();
                    map.insert(key, s.clone());
                    s
                }
            }
        };
        shared.await.map_err(|e| crate::error::dup(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let f = Arc::new(InFlight::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (f, runs) = (f.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                let r2 = runs.clone();
                f.run("k".into(), async move {
                    r2.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(ImageError::Store("boom".into()))
                })
                .await
            }));
        }
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert_eq!(e.to_string(), "image store: boom");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Finished: the next call runs again.
        f.run("k".into(), async { Ok(()) }).await.unwrap();
        assert!(f.map.lock().unwrap().is_empty());
    }
}
