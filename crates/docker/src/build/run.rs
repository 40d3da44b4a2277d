//! RUN: a real container, created through the same path as `docker create` on the current
//! image with the current config, started, waited for, its output streamed, its writable
//! layer committed; the container goes afterwards (`rm`/`forcerm`).

use std::time::Duration;

use berth_core::container::record::ContainerRecord;
use berth_engine::WaitCondition;
use bollard_stubs::models::ContainerCreateBody;

use super::steps::{Builder, env_list, short};
use crate::containers::{self, from_engine};
use crate::error::ApiError;

/// How often the running step's log is read for new output.
const LOG_POLL: Duration = Duration::from_millis(100);
const SIGKILL: i32 = 9;

pub fn cancelled() -> ApiError {
    ApiError::bad_request("the build was cancelled: the client went away")
}

impl Builder {
    /// A container on the current image running `argv` with the current config.
    pub(super) async fn step_container(
        &self,
        argv: Vec<String>,
    ) -> Result<ContainerRecord, ApiError> {
        let image = self.image.as_ref().ok_or_else(|| {
            ApiError::bad_request(
                "this step needs a base image: there is nothing to run on FROM scratch",
            )
        })?;
        let mut env = env_list(&self.config);
        for (k, v) in &self.args {
            if !env.iter().any(|e| e.split('=').next() == Some(k)) {
                env.push(format!("{k}={v}"));
            }
        }
        let text = |key: &str| self.config[key].as_str().map(String::from);
        let body = ContainerCreateBody {
            image: Some(image.id.to_string()),
            entrypoint: Some(argv.clone()),
            cmd: Some(Vec::new()),
            env: Some(env),
            user: text("User"),
            working_dir: text("WorkingDir"),
            host_config: Some(self.opts.host.clone()),
            ..Default::default()
        };
        let id = containers::create::create_container(&self.api, None, body).await?;
        containers::find(&self.api, &id)
    }

    pub(super) async fn discard(&self, rec: &ContainerRecord) {
        if !self.opts.rm {
            return;
        }
        self.out.say(format!(
            "Removing intermediate container {}\n",
            short(&rec.id)
        ));
        if let Err(e) = containers::lifecycle::remove(&self.api, rec, true).await {
            tracing::warn!(container = %rec.id, error = %e.message, "removing a build container");
        }
    }

    pub async fn run(&mut self, argv: Vec<String>, created_by: String) -> Result<(), ApiError> {
        let rec = self.step_container(argv.clone()).await?;
        self.out
            .say(format!(" ---> Running in {}\n", short(&rec.id)));
        let res = self.run_in(&rec, &argv).await;
        let res = match res {
            Ok(()) => {
                self.commit(Some(rec.bundle.join("upper")), rec.id.clone(), created_by)
                    .await
            }
            Err(e) => Err(e),
        };
        if self.out.is_closed() {
            // Cancelled: the container goes whatever `rm` says (it was killed midway).
            self.discard_always(&rec).await;
        } else {
            self.discard(&rec).await;
        }
        res
    }

    async fn run_in(&self, rec: &ContainerRecord, argv: &[String]) -> Result<(), ApiError> {
        containers::lifecycle::start(&self.api, &rec.id).await?;
        let log = std::path::PathBuf::from(containers::stored(&self.api, rec).log_dir)
            .join(containers::create::LOG_FILE);
        let engine = self.api.runtime.clone();
        let id = rec.id.clone();
        let mut wait =
            tokio::spawn(
                async move { engine.wait_container(&id, WaitCondition::NotRunning).await },
            );
        let mut offset = 0u64;
        let code = loop {
            tokio::select! {
                res = &mut wait => {
                    self.forward_log(&log, &mut offset);
                    break res
                        .map_err(|e| ApiError::internal(format!("waiting for the step: {e}")))?
                        .map_err(from_engine)?;
                }
                _ = tokio::time::sleep(LOG_POLL) => self.forward_log(&log, &mut offset),
                // The client went away (Ctrl-C): dockerd cancels the build, so do we.
                _ = self.out.closed() => {
                    wait.abort();
                    if let Err(e) = self.api.runtime.kill_container(&rec.id, SIGKILL).await {
                        tracing::warn!(container = %rec.id, error = %e, "stopping a cancelled build step");
                    }
                    return Err(cancelled());
                }
            }
        };
        if code != 0 {
            return Err(ApiError::internal(format!(
                "The command '{}' returned a non-zero code: {code}",
                argv.join(" ")
            )));
        }
        Ok(())
    }

    /// Sends the complete lines the step logged since `offset` (CRI log format).
    fn forward_log(&self, log: &std::path::Path, offset: &mut u64) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(log) else {
            return;
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(*offset)).is_err() || f.read_to_end(&mut buf).is_err() {
            return;
        }
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        *offset += end as u64 + 1;
        let mut text = String::new();
        for l in buf[..end].split(|b| *b == b'\n') {
            // `<time> <stream> <P|F> <text>`: a partial line (P) continues on the next.
            let mut parts = l.splitn(4, |b| *b == b' ');
            let (_, _, tag) = (parts.next(), parts.next(), parts.next());
            text.push_str(&String::from_utf8_lossy(parts.next().unwrap_or_default()));
            if tag != Some(b"P") {
                text.push('\n');
            }
        }
        if !text.is_empty() {
            self.out.say(text);
        }
    }
}
