//! The container side's fakes: runtime, rootfs, streaming sessions, stats.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::runtime::*;

use super::Ledger;

/// A fake runtime: processes are entries in a map; `sleep`-like programs run until killed,
/// anything else exits 0 at start; a program named `missing` cannot be exec'd.
#[derive(Default)]
pub struct FakeRuntime {
    pub procs: Mutex<HashMap<String, ProcessState>>,
    pub args: Mutex<HashMap<String, Vec<String>>>,
    pub released_pods: Mutex<Vec<String>>,
    pub updates: Mutex<Vec<serde_json::Value>>,
    /// Containers whose processes are frozen.
    pub paused: Mutex<std::collections::HashSet<String>>,
    /// Every signal sent, as (container, signal).
    pub signals: Mutex<Vec<(String, i32)>>,
}

impl FakeRuntime {
    /// Ends a running process as if it exited by itself with `code`.
    pub fn exit(&self, id: &str, code: i32) {
        if let Some(st) = self.procs.lock().unwrap().get_mut(id)
            && st.status == ProcessStatus::Running
        {
            st.status = ProcessStatus::Exited;
            st.exit_code = Some(code);
            st.finished_at = Some(super::super::containers::lifecycle::now_ns());
        }
    }
}

fn state(status: ProcessStatus) -> ProcessState {
    ProcessState {
        status,
        pid: Some(4242),
        started_at: None,
        finished_at: None,
        exit_code: None,
        oom_killed: false,
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn create(&self, req: &CreateRequest) -> Result<ProcessState, RuntimeError> {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(req.bundle.join("config.json")).unwrap())
                .unwrap();
        let args: Vec<String> = serde_json::from_value(spec["process"]["args"].clone()).unwrap();
        self.args
            .lock()
            .unwrap()
            .insert(req.container_id.clone(), args);
        let st = state(ProcessStatus::Created);
        self.procs
            .lock()
            .unwrap()
            .insert(req.container_id.clone(), st.clone());
        Ok(st)
    }
    async fn start(&self, _: &str, id: &str) -> Result<ProcessState, RuntimeError> {
        let args = self
            .args
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default();
        if args.first().map(String::as_str) == Some("missing") {
            return Err(RuntimeError::failed(
                "exec",
                "exec \"missing\": no such file or directory",
            ));
        }
        let mut procs = self.procs.lock().unwrap();
        let st = procs
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        st.started_at = Some(1);
        if args.iter().any(|a| a.contains("sleep")) {
            st.status = ProcessStatus::Running;
        } else {
            st.status = ProcessStatus::Exited;
            st.exit_code = Some(if args.iter().any(|a| a == "false") {
                1
            } else {
                0
            });
            st.finished_at = Some(2);
        }
        Ok(st.clone())
    }
    async fn kill(&self, _: &str, id: &str, signal: i32, _: bool) -> Result<(), RuntimeError> {
        self.signals.lock().unwrap().push((id.to_string(), signal));
        // SIGWINCH, SIGUSR1...: ignored, as by most programs.
        if matches!(signal, 10 | 28) {
            return Ok(());
        }
        let mut procs = self.procs.lock().unwrap();
        let st = procs
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if st.status != ProcessStatus::Exited {
            st.status = ProcessStatus::Exited;
            st.exit_code = Some(128 + signal);
            st.finished_at = Some(3);
        }
        Ok(())
    }
    /// Blocks until the process is no longer created or running, or `timeout` passed.
    async fn wait(
        &self,
        p: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<ProcessState, RuntimeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let st = self.state(p, id).await?;
            let live = matches!(st.status, ProcessStatus::Created | ProcessStatus::Running);
            if !live || tokio::time::Instant::now() >= deadline {
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    async fn state(&self, _: &str, id: &str) -> Result<ProcessState, RuntimeError> {
        Ok(self
            .procs
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_else(|| state(ProcessStatus::Unknown)))
    }
    async fn delete(&self, _: &str, id: &str) -> Result<(), RuntimeError> {
        self.procs.lock().unwrap().remove(id);
        Ok(())
    }
    async fn exec_sync(&self, _: &str, req: &ExecRequest) -> Result<ExecOutput, RuntimeError> {
        let args: Vec<String> = serde_json::from_value(req.process["args"].clone()).unwrap();
        Ok(ExecOutput {
            stdout: args.join(" ").into_bytes(),
            stderr: vec![],
            exit_code: 0,
            timed_out: false,
        })
    }
    async fn update(&self, _: &str, _: &str, r: &Resources) -> Result<(), RuntimeError> {
        self.updates.lock().unwrap().push(r.clone());
        Ok(())
    }
    async fn reopen_log(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn pause(&self, _: &str, id: &str) -> Result<(), RuntimeError> {
        let running = self
            .procs
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|s| s.status == ProcessStatus::Running);
        if !running {
            return Err(RuntimeError::FailedPrecondition {
                id: id.into(),
                message: "is not running".into(),
            });
        }
        self.paused.lock().unwrap().insert(id.to_string());
        Ok(())
    }
    async fn resume(&self, _: &str, id: &str) -> Result<(), RuntimeError> {
        self.paused.lock().unwrap().remove(id);
        Ok(())
    }
    async fn exec_stream(
        &self,
        _: &str,
        req: &berth_core::stream::ExecStreamRequest,
    ) -> Result<berth_core::stream::StdioSession, RuntimeError> {
        fake_session(format!("exec {}\n", req.process["args"]).into_bytes())
    }
    async fn attach(
        &self,
        _: &str,
        req: &berth_core::stream::AttachRequest,
    ) -> Result<berth_core::stream::StdioSession, RuntimeError> {
        fake_session(format!("attach {}\n", req.container_id).into_bytes())
    }
    async fn release_pod(&self, pod_id: &str) -> Result<(), RuntimeError> {
        self.released_pods.lock().unwrap().push(pod_id.into());
        Ok(())
    }
}

/// A fake rootfs: a directory with a passwd file; the ledger tracks it.
pub struct FakeRootfs(pub Arc<Ledger>);

#[async_trait]
impl Rootfs for FakeRootfs {
    async fn mount(&self, dir: &Path, _: &[PathBuf], _: bool) -> Result<PathBuf, RuntimeError> {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        self.0
            .held
            .lock()
            .unwrap()
            .insert(format!("rootfs:{}", dir.display()));
        Ok(rootfs)
    }
    async fn remove(&self, dir: &Path) -> Result<(), RuntimeError> {
        let _ = std::fs::remove_dir_all(dir);
        self.0
            .held
            .lock()
            .unwrap()
            .remove(&format!("rootfs:{}", dir.display()));
        Ok(())
    }
}

/// A session whose stdout holds `out` and whose process "exits" 0 at once.
fn fake_session(out: Vec<u8>) -> Result<berth_core::stream::StdioSession, RuntimeError> {
    use std::io::Write;
    let (r, mut w) = std::io::pipe().unwrap();
    w.write_all(&out).unwrap();
    drop(w);
    Ok(berth_core::stream::StdioSession {
        stdin: None,
        stdout: Some(r.into()),
        stderr: None,
        resize: None,
        exit: Box::pin(async { Ok(0) }),
    })
}

/// Records what the streaming RPCs registered; answers `http://streams.test/<n>`.
#[derive(Default)]
pub struct FakeStreams {
    pub registered: Mutex<Vec<berth_core::stream::StreamRequest>>,
}

impl berth_core::stream::StreamService for FakeStreams {
    fn register(
        &self,
        req: berth_core::stream::StreamRequest,
    ) -> Result<String, berth_core::stream::StreamError> {
        let mut r = self.registered.lock().unwrap();
        r.push(req);
        Ok(format!("http://streams.test/{}", r.len()))
    }
}

/// Stats that grow by one second of CPU and 1 MiB of memory per read.
#[derive(Default)]
pub struct FakeStats(std::sync::atomic::AtomicU64);

impl berth_core::stats::StatsReader for FakeStats {
    fn cgroup(
        &self,
        _: &str,
    ) -> Result<berth_core::stats::CgroupUsage, berth_core::stats::StatsError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Ok(berth_core::stats::CgroupUsage {
            cpu_usage_ns: Some(n * 1_000_000_000),
            memory: Some(berth_core::stats::MemoryUsage {
                usage_bytes: n << 20,
                working_set_bytes: n << 20,
                ..Default::default()
            }),
            pids: Some(1),
        })
    }
    fn dir_usage(
        &self,
        _: &std::path::Path,
    ) -> Result<berth_core::stats::DirUsage, berth_core::stats::StatsError> {
        Ok(berth_core::stats::DirUsage {
            used_bytes: 4096,
            inodes_used: 1,
        })
    }
    fn network(
        &self,
        _: &std::path::Path,
    ) -> Result<Vec<berth_core::stats::InterfaceUsage>, berth_core::stats::StatsError> {
        Ok(Vec::new())
    }
}
