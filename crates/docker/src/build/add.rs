//! COPY and ADD: the files are unpacked by the ContainerFiles port into the root
//! filesystem of a container created (never started) on the current image, whose writable
//! layer is then committed; on `FROM scratch` into an empty directory committed as the
//! first layer. `COPY --from=<stage|image>` reads the files out of a container on that
//! image the same way `docker cp` does.

use std::sync::Arc;

use berth_core::container::record::ContainerRecord;
use berth_core::files::{ContainerFiles, ExtractOptions, FsView, PathStat};

use super::copy::{CopyPlan, Source, write_tar};
use super::dockerfile::{Instruction, exec_form, words};
use super::steps::Builder;
use crate::containers;
use crate::error::ApiError;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the copy task failed: {e}")))?
}

fn rootfs_view(rec: &ContainerRecord) -> FsView {
    FsView {
        rootfs: rec.bundle.join("rootfs"),
        mounts: Vec::new(),
    }
}

async fn stat(files: &Arc<dyn ContainerFiles>, view: &FsView, path: &str) -> Option<PathStat> {
    let (files, view, path) = (files.clone(), view.clone(), path.to_string());
    blocking(move || Ok(files.stat(&view, &path).ok()))
        .await
        .ok()
        .flatten()
}

impl Builder {
    pub async fn copy(&mut self, i: &Instruction) -> Result<(), ApiError> {
        let add = i.keyword == "ADD";
        if i.flag("chmod").is_some() {
            return Err(ApiError::bad_request(format!(
                "{} --chmod needs BuildKit; berth's classic builder does not take it",
                i.keyword
            )));
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
        let dest = dest[0].clone();
        for s in srcs {
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                return Err(ApiError::bad_request(format!(
                    "ADD {s}: berth's builder takes files from the build context only (no downloads); fetch it first and ADD the file"
                )));
            }
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
        // Where the files go: a container's root filesystem, or a directory on scratch.
        let rec = match &self.image {
            Some(_) => {
                let argv = vec![
                    self.shell[0].clone(),
                    "-c".into(),
                    format!("#(nop) {}", i.original),
                ];
                Some(self.step_container(argv).await?)
            }
            None => None,
        };
        let (view, upper) = match &rec {
            Some(r) => (rootfs_view(r), r.bundle.join("upper")),
            None => {
                let dir = self.ctx.root.join(format!("layer-{}", self.made.len()));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ApiError::internal(format!("creating a layer directory: {e}")))?;
                let view = FsView {
                    rootfs: dir.clone(),
                    mounts: Vec::new(),
                };
                (view, dir)
            }
        };
        let many = dest.ends_with('/') || srcs.len() > 1;
        let res = self.copy_into(&view, srcs, &full_dest, many, i).await;
        let res = match res {
            Ok(()) => {
                let id = rec.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                let created_by = format!("{} -c #(nop) {}", self.shell[0], i.original);
                self.commit(Some(upper.clone()), id, created_by).await
            }
            Err(e) => Err(e),
        };
        match &rec {
            Some(r) => self.discard_always(r).await,
            None => {
                let _ = std::fs::remove_dir_all(&upper);
            }
        }
        res
    }

    pub(super) async fn discard_always(&self, rec: &ContainerRecord) {
        if let Err(e) = containers::lifecycle::remove(&self.api, rec, true).await {
            tracing::warn!(container = %rec.id, error = %e.message, "removing a build container");
        }
    }

    async fn copy_into(
        &self,
        view: &FsView,
        srcs: &[String],
        dest: &str,
        many: bool,
        i: &Instruction,
    ) -> Result<(), ApiError> {
        let files = self.api.files.clone();
        let existing = stat(&files, view, dest).await;
        let dest_dir_exists = existing.as_ref().is_some_and(PathStat::is_dir);
        let from = i.flag("from");
        // `COPY --from`: the files come out of a container on that image.
        let from_rec = match from {
            Some(name) => Some(self.source_container(name).await?),
            None => None,
        };
        let res = async {
            let (sources, src_dirs) = match &from_rec {
                Some(r) => self.archived_sources(r, srcs).await?,
                None => {
                    let mut out = Vec::new();
                    for s in srcs {
                        out.extend(self.ctx.sources(s)?);
                    }
                    let dirs = out
                        .iter()
                        .filter(|s| std::fs::metadata(self.ctx.ctx.join(s)).is_ok_and(|m| m.is_dir()))
                        .count();
                    (out.into_iter().map(Source::Context).collect::<Vec<_>>(), dirs)
                }
            };
            let many = many || sources.len() > 1;
            if sources.len() > 1 && !dest.ends_with('/') && !dest_dir_exists {
                return Err(ApiError::bad_request(format!(
                    "When using {} with more than one source file, the destination must be a directory and end with a /",
                    i.keyword
                )));
            }
            let single_dir = sources.len() == 1 && src_dirs == 1;
            let owner = match i.flag("chown") {
                Some(spec) => Some(owner(&view.rootfs, &self.expand(spec)?)?),
                None => None,
            };
            let plan = CopyPlan {
                ctx_dir: self.ctx.ctx.clone(),
                ignore: self.ctx.ignore.clone(),
                sources,
                dest: dest.to_string(),
                dest_is_dir: many || single_dir || dest_dir_exists,
                create_dest: existing.is_none(),
                owner,
                unpack_archives: i.keyword == "ADD",
            };
            let tar_path = self.ctx.root.join("copy.tar");
            let (view, files) = (view.clone(), files.clone());
            blocking(move || {
                let f = std::fs::File::create(&tar_path)
                    .map_err(|e| ApiError::internal(format!("creating {}: {e}", tar_path.display())))?;
                let written = write_tar(&plan, std::io::BufWriter::new(f));
                let res = written.and_then(|()| {
                    let mut f = std::fs::File::open(&tar_path)
                        .map_err(|e| ApiError::internal(format!("reading the copy: {e}")))?;
                    let opts = ExtractOptions {
                        no_overwrite_dir_non_dir: false,
                        copy_uid_gid: true,
                    };
                    files
                        .extract(&view, "/", &mut f, opts)
                        .map_err(|e| ApiError::internal(format!("copying into the image: {e}")))
                });
                let _ = std::fs::remove_file(&tar_path);
                for s in &plan.sources {
                    if let Source::Archive { tar, .. } = s {
                        let _ = std::fs::remove_file(tar);
                    }
                }
                res
            })
            .await
        }
        .await;
        if let Some(r) = &from_rec {
            self.discard_always(r).await;
        }
        res
    }

    /// A container (never started) on the stage or image `name`, to read files from.
    async fn source_container(&self, name: &str) -> Result<ContainerRecord, ApiError> {
        let img = match self.stage(name) {
            Some(img) => img,
            None => self.base_image(name).await.map_err(|e| {
                ApiError::bad_request(format!(
                    "COPY --from={name}: no build stage or image of that name ({})",
                    e.message
                ))
            })?,
        };
        let body = bollard_stubs::models::ContainerCreateBody {
            image: Some(img.id.to_string()),
            entrypoint: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "#(nop) COPY --from".into(),
            ]),
            cmd: Some(Vec::new()),
            host_config: Some(Default::default()),
            ..Default::default()
        };
        let id = containers::create::create_container(&self.api, None, body).await?;
        containers::find(&self.api, &id)
    }

    /// Each source path archived out of `rec` into a file; and how many are directories.
    async fn archived_sources(
        &self,
        rec: &ContainerRecord,
        srcs: &[String],
    ) -> Result<(Vec<Source>, usize), ApiError> {
        let mut out = Vec::new();
        let mut dirs = 0;
        for (n, s) in srcs.iter().enumerate() {
            if s.contains(['*', '?', '[']) {
                return Err(ApiError::bad_request(format!(
                    "COPY --from: wildcards are not supported here ({s}): name the path"
                )));
            }
            let tar = self.ctx.root.join(format!("from-{n}.tar"));
            let (files, view, path, t) = (
                self.api.files.clone(),
                rootfs_view(rec),
                s.clone(),
                tar.clone(),
            );
            let stat = blocking(move || {
                let mut f = std::fs::File::create(&t)
                    .map_err(|e| ApiError::internal(format!("creating {}: {e}", t.display())))?;
                files.archive(&view, &path, &mut f).map_err(|e| {
                    ApiError::internal(format!(
                        "COPY failed: stat {path}: file does not exist in the source image ({e})"
                    ))
                })
            })
            .await?;
            dirs += usize::from(stat.is_dir());
            out.push(Source::Archive {
                tar,
                is_dir: stat.is_dir(),
            });
        }
        Ok((out, dirs))
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
