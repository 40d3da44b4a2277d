//! The steps that make a layer in a real container, created through the same path as
//! `docker create` on the current image with the current config: RUN starts it, waits,
//! streams its output and commits its writable layer; COPY and ADD unpack their files into
//! its (never started) root filesystem and commit that. The container goes afterwards
//! (`rm`/`forcerm`).

use std::time::Duration;

use berth_core::container::record::ContainerRecord;
use berth_core::files::{ExtractOptions, FsView};
use berth_engine::WaitCondition;
use bollard_stubs::models::{ContainerCreateBody, HostConfig};

use super::copy::{CopyPlan, write_tar};
use super::dockerfile::{Instruction, exec_form, words};
use super::steps::{Builder, env_list, short};
use crate::containers::{self, from_engine};
use crate::error::ApiError;

/// How often the running step's log is read for new output.
const LOG_POLL: Duration = Duration::from_millis(100);

impl Builder {
    /// A container on the current image running `argv` with the current config.
    async fn step_container(&self, argv: Vec<String>) -> Result<ContainerRecord, ApiError> {
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
            host_config: Some(HostConfig::default()),
            ..Default::default()
        };
        let id = containers::create::create_container(&self.api, None, body).await?;
        containers::find(&self.api, &id)
    }

    async fn discard(&self, rec: &ContainerRecord) {
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
        self.discard(&rec).await;
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

    /// COPY and ADD.
    pub async fn copy(&mut self, i: &Instruction) -> Result<(), ApiError> {
        let add = i.keyword == "ADD";
        if i.flag("chmod").is_some() {
            return Err(ApiError::bad_request(format!(
                "{} --chmod needs BuildKit; berth's classic builder does not take it",
                i.keyword
            )));
        }
        if i.flag("from").is_some() {
            return Err(ApiError::bad_request(
                "COPY --from is not supported by berth's builder yet: copy from the build context",
            ));
        }
        let args: Vec<String> = match exec_form(&i.rest) {
            Some(a) => a,
            None => words(&i.rest, self.escape)
                .iter()
                .map(|w| self.expand(w))
                .collect::<Result<_, _>>()?,
        };
        if args.len() < 2 {
            return Err(ApiError::bad_request(format!(
                "{} requires at least two arguments, but got {}",
                i.keyword,
                args.len()
            )));
        }
        let (srcs, dest) = args.split_at(args.len() - 1);
        let dest = &dest[0];
        let mut sources = Vec::new();
        let mut wildcard = false;
        for s in srcs {
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                return Err(ApiError::bad_request(format!(
                    "ADD {s}: berth's builder takes files from the build context only (no downloads); fetch it first and ADD the file"
                )));
            }
            wildcard |= s.contains(['*', '?', '[']);
            sources.extend(self.ctx.sources(s)?);
        }
        let workdir = self.config["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let full_dest = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", workdir.trim_end_matches('/'))
        };
        let created_by = format!("{} -c #(nop) {}", self.shell[0], i.original);
        let rec = match &self.image {
            Some(_) => Some(
                self.step_container(vec![
                    self.shell[0].clone(),
                    "-c".into(),
                    format!("#(nop) {}", i.original),
                ])
                .await?,
            ),
            None => None,
        };
        let (view, upper) = match &rec {
            Some(r) => (
                FsView {
                    rootfs: r.bundle.join("rootfs"),
                    mounts: Vec::new(),
                },
                r.bundle.join("upper"),
            ),
            None => {
                let dir = self.ctx.root.join(format!("layer-{}", self.made.len()));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ApiError::internal(format!("creating a layer directory: {e}")))?;
                (
                    FsView {
                        rootfs: dir.clone(),
                        mounts: Vec::new(),
                    },
                    dir,
                )
            }
        };
        let res = self
            .copy_into(
                &view,
                sources,
                &full_dest,
                dest.ends_with('/') || wildcard || srcs.len() > 1,
                i,
                add,
            )
            .await;
        let res = match res {
            Ok(()) => {
                let id = rec.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                self.commit(Some(upper.clone()), id, created_by).await
            }
            Err(e) => Err(e),
        };
        match &rec {
            Some(r) => {
                if let Err(e) = containers::lifecycle::remove(&self.api, r, true).await {
                    tracing::warn!(container = %r.id, error = %e.message, "removing a build container");
                }
            }
            None => {
                let _ = std::fs::remove_dir_all(&upper);
            }
        }
        res
    }

    async fn copy_into(
        &self,
        view: &FsView,
        sources: Vec<String>,
        dest: &str,
        many: bool,
        i: &Instruction,
        add: bool,
    ) -> Result<(), ApiError> {
        let files = self.api.files.clone();
        let stat = {
            let (files, view, dest) = (files.clone(), view.clone(), dest.to_string());
            tokio::task::spawn_blocking(move || files.stat(&view, &dest).ok())
                .await
                .ok()
                .flatten()
        };
        let single_dir = sources.len() == 1
            && std::fs::metadata(self.ctx.ctx.join(&sources[0])).is_ok_and(|m| m.is_dir());
        let dest_is_dir = many || single_dir || stat.as_ref().is_some_and(|s| s.is_dir());
        if sources.len() > 1 && !dest.ends_with('/') && !stat.as_ref().is_some_and(|s| s.is_dir()) {
            return Err(ApiError::bad_request(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                i.keyword
            )));
        }
        let owner = match i.flag("chown") {
            Some(spec) => Some(owner(&view.rootfs, &self.expand(spec)?)?),
            None => None,
        };
        let plan = CopyPlan {
            ctx: &self.ctx,
            sources,
            dest: dest.to_string(),
            dest_is_dir,
            create_dest: stat.is_none(),
            owner,
            unpack_archives: add,
        };
        let tar_path = self.ctx.root.join("copy.tar");
        let f = std::fs::File::create(&tar_path)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", tar_path.display())))?;
        let written = write_tar(&plan, std::io::BufWriter::new(f));
        let res = match written {
            Ok(()) => {
                let (view, p) = (view.clone(), tar_path.clone());
                tokio::task::spawn_blocking(move || {
                    let mut f = std::fs::File::open(&p)
                        .map_err(|e| ApiError::internal(format!("reading the copy: {e}")))?;
                    let opts = ExtractOptions {
                        no_overwrite_dir_non_dir: false,
                        copy_uid_gid: true,
                    };
                    files
                        .extract(&view, "/", &mut f, opts)
                        .map_err(|e| ApiError::internal(format!("copying into the image: {e}")))
                })
                .await
                .map_err(|e| ApiError::internal(format!("the copy task failed: {e}")))?
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&tar_path);
        res
    }
}

/// `--chown=user[:group]` as numbers, names looked up in the image's /etc/passwd and
/// /etc/group; without a group the gid is the uid (dockerd's rule).
fn owner(rootfs: &std::path::Path, spec: &str) -> Result<(u64, u64), ApiError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |f: &str| -> Vec<Vec<String>> {
        let p = rootfs.join(f);
        // A link could point outside the root filesystem: only a plain file is read.
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            return Vec::new();
        }
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').map(String::from).collect())
            .collect()
    };
    let passwd = read("etc/passwd");
    let uid = match user.parse::<u64>() {
        Ok(n) => n,
        Err(_) => passwd
            .iter()
            .find(|f| f.first().map(String::as_str) == Some(user))
            .and_then(|f| f.get(2)?.parse().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "--chown={spec}: no user {user:?} in the image's /etc/passwd"
                ))
            })?,
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => read("etc/group")
                .iter()
                .find(|f| f.first().map(String::as_str) == Some(g))
                .and_then(|f| f.get(2)?.parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "--chown={spec}: no group {g:?} in the image's /etc/group"
                    ))
                })?,
        },
    };
    Ok((uid, gid))
}
