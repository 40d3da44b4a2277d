//! The classic builder's loop: one instruction after another on the current image and its
//! run config, each ending in a new image (a layer for RUN, COPY and ADD; the config alone
//! for the others, an empty layer in the history as dockerd records it). Intermediate
//! images are removed at the end: only the result (and the images FROM named) stay. No
//! layer cache: every step runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use berth_core::image::{CommitRequest, Image};
use berth_core::{Digest, Reference};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::context::Context;
use super::dockerfile::{self, Instruction, exec_form, expand, pairs, words};
use crate::DockerApi;
use crate::error::ApiError;
use crate::http::line;

/// What the request asked besides the Dockerfile.
pub struct Options {
    /// The RUN containers' network mode and limits.
    pub host: bollard_stubs::models::HostConfig,
    /// Credentials per registry host (`X-Registry-Config`), for FROM's pulls.
    pub auths: BTreeMap<String, berth_core::image::RegistryAuth>,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    /// Remove intermediate containers (`rm`, default) / always (`forcerm`).
    pub rm: bool,
    pub pull: bool,
    pub target: Option<String>,
}

/// The JSON stream to the client.
pub struct Out {
    tx: mpsc::UnboundedSender<Bytes>,
    quiet: bool,
}

impl Out {
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, quiet: bool) -> Self {
        Self { tx, quiet }
    }
    /// Build output (hidden with `q`).
    pub fn say(&self, text: impl Into<String>) {
        if !self.quiet {
            self.always(text);
        }
    }
    pub fn always(&self, text: impl Into<String>) {
        let _ = self.tx.send(line(&json!({"stream": text.into()})));
    }
    pub fn aux_id(&self, id: &Digest) {
        let _ = self.tx.send(line(&json!({"aux": {"ID": id.to_string()}})));
    }
    /// Resolves when the client has gone (the response body was dropped).
    pub async fn closed(&self) {
        self.tx.closed().await
    }
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
    pub fn error(&self, message: &str) {
        let _ = self.tx.send(line(
            &json!({"errorDetail": {"message": message}, "error": message}),
        ));
    }
}

/// The 12 hex digits dockerd shows of an id.
pub fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

pub struct Builder {
    pub api: Arc<DockerApi>,
    pub ctx: Context,
    pub out: Out,
    pub opts: Options,
    pub escape: char,
    /// The current image; None after `FROM scratch` until a step makes one.
    pub image: Option<Image>,
    /// Its run config (the image config's `config`, Docker's field names).
    pub config: Value,
    /// ARGs declared in this stage, with their values.
    pub args: BTreeMap<String, String>,
    /// ARGs declared before the first FROM.
    global_args: BTreeMap<String, String>,
    pub shell: Vec<String>,
    /// MAINTAINER's, for the images' `author`.
    pub author: String,
    /// Images this build made; all but the result go at the end.
    pub made: Vec<Digest>,
    /// Finished stages: (name, image).
    pub stages: Vec<(Option<String>, Option<Image>)>,
    stage_name: Option<String>,
    /// A FROM was seen (ARGs before it are global).
    in_stage: bool,
    used_args: BTreeSet<String>,
}

impl Builder {
    pub fn new(api: Arc<DockerApi>, ctx: Context, out: Out, opts: Options) -> Self {
        Self {
            api,
            ctx,
            out,
            opts,
            escape: '\\',
            image: None,
            config: json!({}),
            args: BTreeMap::new(),
            global_args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            author: String::new(),
            made: Vec::new(),
            stages: Vec::new(),
            stage_name: None,
            in_stage: false,
            used_args: BTreeSet::new(),
        }
    }

    /// Runs the Dockerfile; the result's id. Intermediate images go either way.
    pub async fn build(&mut self, dockerfile: &str) -> Result<Digest, ApiError> {
        let res = self.steps(dockerfile).await;
        let keep = res.as_ref().ok().cloned();
        for id in std::mem::take(&mut self.made) {
            if Some(&id) != keep.as_ref()
                && let Err(e) = self.api.images.remove(&id.to_string()).await
            {
                tracing::warn!(image = %id, error = %e, "removing an intermediate build image");
            }
        }
        res
    }

    async fn steps(&mut self, dockerfile: &str) -> Result<Digest, ApiError> {
        let (mut ins, escape) = dockerfile::parse(dockerfile).map_err(ApiError::bad_request)?;
        self.escape = escape;
        if !ins.iter().any(|i| i.keyword == "FROM") {
            return Err(ApiError::bad_request(
                "No build stage in current context: the Dockerfile has no FROM",
            ));
        }
        if let Some(t) = &self.opts.target {
            let found = ins.iter().position(|i| {
                i.keyword == "FROM" && stage_name(&i.rest).as_deref() == Some(t.as_str())
            });
            let Some(start) = found else {
                return Err(ApiError::bad_request(format!(
                    "failed to reach build target {t} in Dockerfile"
                )));
            };
            let end = ins[start + 1..]
                .iter()
                .position(|i| i.keyword == "FROM")
                .map_or(ins.len(), |p| start + 1 + p);
            ins.truncate(end);
        }
        if !self.opts.labels.is_empty() {
            let text: Vec<String> = self
                .opts
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", json!(k), json!(v)))
                .collect();
            let l = format!("LABEL {}", text.join(" "));
            ins.push(Instruction {
                keyword: "LABEL".into(),
                flags: Vec::new(),
                rest: l["LABEL ".len()..].to_string(),
                original: l,
            });
        }
        let total = ins.len();
        for (n, i) in ins.iter().enumerate() {
            if self.out.is_closed() {
                return Err(super::run::cancelled());
            }
            self.out
                .say(format!("Step {}/{total} : {}\n", n + 1, i.original));
            self.step(i).await?;
            if let Some(img) = &self.image {
                self.out
                    .say(format!(" ---> {}\n", short(&img.id.to_string())));
            }
        }
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.out.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ));
        }
        let img = self.image.clone().ok_or_else(|| {
            ApiError::bad_request("No image was generated. Is your Dockerfile empty?")
        })?;
        Ok(img.id)
    }

    /// The variables for expansion: the declared ARGs, then ENV over them.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut v = self.args.clone();
        for e in env_list(&self.config) {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }

    pub fn expand(&self, s: &str) -> Result<String, ApiError> {
        expand(s, &self.vars(), self.escape).map_err(ApiError::bad_request)
    }

    async fn step(&mut self, i: &Instruction) -> Result<(), ApiError> {
        let known_flags: &[&str] = match i.keyword.as_str() {
            "FROM" => &["platform"],
            "COPY" => &["chown", "from", "chmod"],
            "ADD" => &["chown", "chmod"],
            "HEALTHCHECK" => &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            _ => &[],
        };
        if let Some((f, _)) = i
            .flags
            .iter()
            .find(|(f, _)| !known_flags.contains(&f.as_str()))
        {
            const BUILDKIT: &[&str] = &[
                "mount",
                "network",
                "security",
                "link",
                "parents",
                "checksum",
                "exclude",
                "keep-git-dir",
            ];
            if BUILDKIT.contains(&f.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "{} --{f} needs BuildKit, which berth does not run: use the classic builder's instructions",
                    i.keyword
                )));
            }
            return Err(ApiError::bad_request(format!(
                "Unknown flag: {f} (on {})",
                i.keyword
            )));
        }
        match i.keyword.as_str() {
            "FROM" => self.from(i).await,
            "ARG" => self.arg(i),
            "RUN" => {
                let argv = match exec_form(&i.rest) {
                    Some(a) => a,
                    None => {
                        let mut a = self.shell.clone();
                        a.push(i.rest.clone());
                        a
                    }
                };
                let created_by = argv.join(" ");
                self.run(argv, created_by).await
            }
            "COPY" | "ADD" => self.copy(i).await,
            "ONBUILD" => Err(ApiError::bad_request(
                "ONBUILD is not supported by berth's builder; drop it from the Dockerfile",
            )),
            "SHELL" | "CMD" | "ENTRYPOINT" | "ENV" | "LABEL" | "WORKDIR" | "USER" | "EXPOSE"
            | "VOLUME" | "STOPSIGNAL" | "MAINTAINER" | "HEALTHCHECK" => {
                self.configure(i)?;
                self.nop(i).await
            }
            other => Err(ApiError::bad_request(format!(
                "Unknown instruction: {other}"
            ))),
        }
    }

    fn arg(&mut self, i: &Instruction) -> Result<(), ApiError> {
        let ps = pairs(&i.rest, &self.vars(), self.escape).map_err(ApiError::bad_request)?;
        for (name, default) in ps {
            self.used_args.insert(name.clone());
            let given = self.opts.build_args.get(&name).cloned().flatten();
            let global = self.global_args.get(&name).cloned();
            let value = given.or(default).or(global);
            if !self.in_stage {
                // Before the first FROM: for FROM lines only.
                if let Some(v) = value {
                    self.global_args.insert(name, v);
                }
            } else if let Some(v) = value {
                self.args.insert(name, v);
            } else {
                self.args.remove(&name);
            }
        }
        Ok(())
    }

    async fn from(&mut self, i: &Instruction) -> Result<(), ApiError> {
        if let Some(p) = i.flag("platform") {
            return Err(ApiError::bad_request(format!(
                "FROM --platform={p}: berth builds for its own platform only (linux/{}); drop the flag",
                self.api.engine.arch
            )));
        }
        if self.in_stage {
            self.stages
                .push((self.stage_name.take(), self.image.take()));
        }
        self.in_stage = true;
        let ws = words(&i.rest, self.escape);
        let name = expand(
            ws.first().map_or("", |w| w.as_str()),
            &self.global_args,
            self.escape,
        )
        .map_err(ApiError::bad_request)?;
        self.stage_name = stage_name(&i.rest);
        self.args.clear();
        self.shell = vec!["/bin/sh".into(), "-c".into()];
        if name.eq_ignore_ascii_case("scratch") {
            self.image = None;
            self.config = json!({});
            return Ok(());
        }
        let img = match self.stage(&name) {
            Some(img) => img,
            None => self.base_image(&name).await?,
        };
        self.config = img
            .config
            .get("config")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(s) = self.config.get("Shell").and_then(Value::as_array) {
            self.shell = s
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        self.image = Some(img);
        Ok(())
    }

    /// A finished stage's image, by name or index.
    pub fn stage(&self, name: &str) -> Option<Image> {
        self.stages
            .iter()
            .enumerate()
            .find(|(n, (s, _))| {
                s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(name)) || n.to_string() == name
            })
            .and_then(|(_, (_, img))| img.clone())
    }

    pub(super) async fn base_image(&self, name: &str) -> Result<Image, ApiError> {
        if !self.opts.pull
            && let Some(img) = self.api.images.find(name)
        {
            return Ok(img);
        }
        let r = crate::names::pull_reference(name, None)?;
        self.out.say(format!("Pulling {name}\n"));
        let auth = self.opts.auths.get(r.registry()).cloned();
        Ok(self.api.images.pull(&r, auth).await?)
    }

    /// A step that changes only the config.
    async fn nop(&mut self, i: &Instruction) -> Result<(), ApiError> {
        let created_by = format!("{} -c #(nop)  {}", self.shell[0], i.original);
        self.commit(None, String::new(), created_by).await
    }

    /// The next image: `upper` (a layer) if any on the current one, with the current config.
    pub async fn commit(
        &mut self,
        upper: Option<std::path::PathBuf>,
        container: String,
        created_by: String,
    ) -> Result<(), ApiError> {
        let req = CommitRequest {
            upper,
            parent: self.image.as_ref().map(|i| i.id.clone()),
            created_by: Some(created_by),
            config: self.config.clone(),
            container,
            comment: String::new(),
            author: self.author.clone(),
            tag: None,
        };
        let img = self.api.images.commit(req).await?;
        self.made.push(img.id.clone());
        self.image = Some(img);
        Ok(())
    }
}

/// `image AS name` → name.
fn stage_name(rest: &str) -> Option<String> {
    let ws: Vec<&str> = rest.split_whitespace().collect();
    match ws.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
        _ => None,
    }
}

/// The config's Env.
pub fn env_list(config: &Value) -> Vec<String> {
    config["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
