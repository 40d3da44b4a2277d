//! The one task that follows container exits as they happen and applies restart
//! policies. It waits on the runtime (`ContainerRuntime::wait`: the monitor answers when
//! the process ends; no polling) for every running container with a restart policy and
//! for every container someone waits for (`wait_container`), all in one set of futures.
//! An exit is recorded through `refresh` (which publishes the Stopped event waiters
//! listen to); then the policy decides, and a restart is scheduled after Docker's back-off.
//! When berthd starts, exited containers whose policy says so are started again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_core::container::record::ContainerState;
use berth_core::container::restart::{Backoff, Occasion};
use berth_core::runtime::{ContainerRuntime, ProcessState, RuntimeError};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Engine;
use crate::containers::lifecycle;
use crate::containers::rerun::Why;

/// One wait on the runtime lasts this long at most, then it is made again.
const WAIT_SPAN: Duration = Duration::from_secs(3600);
/// After a failed wait (monitor restarting), the next try.
const RETRY: Duration = Duration::from_secs(1);
/// A container busy with another request is looked at again after this.
const BUSY: Duration = Duration::from_millis(50);

enum Msg {
    /// Follow this container until it exits.
    Watch(String),
    /// Started by hand: the back-off starts over and a pending restart is dropped.
    Reset(String),
}

/// The handle the engine keeps; the task ends when it is dropped.
pub struct Supervisor {
    tx: mpsc::UnboundedSender<Msg>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Msg>>>,
    /// Containers waiting out their back-off before a restart (Docker's "restarting").
    restarting: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            restarting: Default::default(),
        }
    }
}

impl Supervisor {
    /// Follows the container until it exits (its exit is then recorded at once).
    pub fn watch(&self, id: &str) {
        let _ = self.tx.send(Msg::Watch(id.to_string()));
    }

    pub fn reset(&self, id: &str) {
        let _ = self.tx.send(Msg::Reset(id.to_string()));
    }

    /// Whether the restart policy will start the container again once its back-off ends.
    pub fn is_restarting(&self, id: &str) -> bool {
        self.restarting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Starts the task (once): follows the running containers with a restart policy and
    /// restarts the exited ones their policy says should run after a daemon start.
    pub fn spawn(engine: &Arc<Engine>) {
        let rx = engine
            .supervisor
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(rx) = rx else { return };
        let mut task = Task {
            engine: Arc::downgrade(engine),
            runtime: engine.containers.ports.runtime.clone(),
            waits: FuturesUnordered::new(),
            watching: HashSet::new(),
            due: HashMap::new(),
            backoff: HashMap::new(),
            restarting: engine.supervisor.restarting.clone(),
        };
        for rec in engine.containers.store.list() {
            let Some(policy) = rec.restart_policy else {
                continue;
            };
            match rec.state {
                ContainerState::Running | ContainerState::Created => task.watch(rec.pod_id, rec.id),
                ContainerState::Exited
                    if policy.should_restart(
                        rec.exit_code,
                        rec.restart_count,
                        rec.manually_stopped,
                        Occasion::DaemonStart,
                    ) =>
                {
                    task.due
                        .insert(rec.id, (Instant::now(), Action::Start(Why::DaemonStart)));
                }
                _ => {}
            }
        }
        tokio::spawn(task.run(rx));
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    /// Record the exit the runtime reported and apply the policy.
    Exited,
    Start(Why),
}

type Waited = (String, String, Result<ProcessState, RuntimeError>);

struct Task {
    engine: Weak<Engine>,
    runtime: Arc<dyn ContainerRuntime>,
    waits: FuturesUnordered<BoxFuture<'static, Waited>>,
    watching: HashSet<String>,
    due: HashMap<String, (Instant, Action)>,
    backoff: HashMap<String, Backoff>,
    restarting: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            self.publish();
            let next = self.due.values().map(|(at, _)| *at).min();
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(Msg::Watch(id)) => {
                        let Some(engine) = self.engine.upgrade() else { break };
                        if let Some(rec) = engine.containers.store.get(&id) {
                            self.watch(rec.pod_id, rec.id);
                        }
                    }
                    Some(Msg::Reset(id)) => {
                        self.backoff.remove(&id);
                        self.due.remove(&id);
                    }
                },
                Some((pod, id, res)) = self.waits.next(), if !self.waits.is_empty() => {
                    self.watching.remove(&id);
                    match res {
                        Ok(st) if is_live(&st) => self.watch(pod, id),
                        Ok(_) | Err(RuntimeError::NotFound(_)) => {
                            // A restart already waiting out its back-off stays as it is.
                            if !self.restart_pending(&id) {
                                self.due.insert(id, (Instant::now(), Action::Exited));
                            }
                        }
                        Err(e) => {
                            tracing::debug!(container = %id, error = %e, "supervisor: wait failed; trying again");
                            self.watch_after(pod, id, RETRY);
                        }
                    }
                }
                _ = sleep_until(next), if next.is_some() => {
                    let Some(engine) = self.engine.upgrade() else { break };
                    self.run_due(&engine).await;
                }
            }
        }
    }

    fn restart_pending(&self, id: &str) -> bool {
        matches!(self.due.get(id), Some((_, Action::Start(_))))
    }

    /// Shares which containers wait for a restart.
    fn publish(&self) {
        let now: HashSet<String> = self
            .due
            .iter()
            .filter(|(_, (_, a))| matches!(a, Action::Start(_)))
            .map(|(id, _)| id.clone())
            .collect();
        *self.restarting.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    fn watch(&mut self, pod: String, id: String) {
        self.watch_after(pod, id, Duration::ZERO);
    }

    fn watch_after(&mut self, pod: String, id: String, delay: Duration) {
        if !self.watching.insert(id.clone()) {
            return;
        }
        let rt = self.runtime.clone();
        self.waits.push(Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let started = Instant::now();
            let res = rt.wait(&pod, &id, WAIT_SPAN).await;
            if res.as_ref().is_ok_and(is_live) && started.elapsed() < RETRY {
                // A runtime that answers "still running" at once is not waited on in a
                // busy loop.
                tokio::time::sleep(RETRY).await;
            }
            (pod, id, res)
        }));
    }

    async fn run_due(&mut self, engine: &Arc<Engine>) {
        let now = Instant::now();
        let ready: Vec<(String, Action)> = self
            .due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, (_, a))| (id.clone(), *a))
            .collect();
        for (id, action) in ready {
            self.due.remove(&id);
            let c = &engine.containers;
            let lock = c.lock_of(&id);
            // A request working on the container reports its own transitions; look again
            // once it is done.
            let Ok(_guard) = lock.try_lock() else {
                self.due.insert(id, (now + BUSY, action));
                continue;
            };
            let Some(mut rec) = c.store.get(&id) else {
                self.backoff.remove(&id);
                continue;
            };
            match action {
                Action::Exited => {
                    if let Err(e) = lifecycle::refresh(c, &mut rec).await {
                        tracing::warn!(container = %id, error = %e, "supervisor: recording an exit");
                    }
                    if rec.state != ContainerState::Exited {
                        // Still running (or being made again): follow it.
                        self.watch(rec.pod_id, rec.id);
                        continue;
                    }
                    self.after_exit(engine, &rec);
                }
                Action::Start(why) => {
                    let wanted = rec.state == ContainerState::Exited
                        && (why == Why::DaemonStart || !rec.manually_stopped);
                    if !wanted {
                        continue;
                    }
                    match engine.rerun(&mut rec, why).await {
                        Ok(()) => {
                            tracing::info!(container = %id, restarts = rec.restart_count, "restarted by its restart policy")
                        }
                        Err(e) => {
                            tracing::warn!(container = %id, error = %e, "restarting by policy failed");
                            self.after_exit(engine, &rec);
                        }
                    }
                }
            }
        }
    }

    /// Applies the policy to an exited container: schedules its restart after the back-off.
    fn after_exit(
        &mut self,
        engine: &Engine,
        rec: &berth_core::container::record::ContainerRecord,
    ) {
        let Some(policy) = rec.restart_policy else {
            return;
        };
        if self.restart_pending(&rec.id) {
            return;
        }
        let pod_ready = engine.pods.ready(&rec.pod_id).is_ok();
        if !pod_ready
            || !policy.should_restart(
                rec.exit_code,
                rec.restart_count,
                rec.manually_stopped,
                Occasion::Exit,
            )
        {
            self.backoff.remove(&rec.id);
            return;
        }
        let ran =
            Duration::from_nanos(rec.finished_at.saturating_sub(rec.started_at).max(0) as u64);
        let delay = self.backoff.entry(rec.id.clone()).or_default().next(ran);
        tracing::debug!(container = %rec.id, ?delay, "restart scheduled");
        self.due.insert(
            rec.id.clone(),
            (Instant::now() + delay, Action::Start(Why::Policy)),
        );
    }
}

fn is_live(st: &ProcessState) -> bool {
    use berth_core::runtime::ProcessStatus;
    matches!(st.status, ProcessStatus::Created | ProcessStatus::Running)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
