//! `docker commit` and `docker import`: a new layer (a container's upper dir written as a
//! gzip tar, or a client's tarball taken as it is) becomes an image, on top of the
//! container's image for a commit, alone for an import.

use std::io;
use std::sync::Arc;

use berth_core::image::{CommitRequest, Image, ImageError, ImportRequest, TarSource};
use serde_json::{Value, json};

use crate::content::io_error;
use crate::layer;
use crate::local_image::{history_entry, now_rfc3339, with_rootfs};
use crate::pull::Lease;
use crate::store::Inner;

impl Inner {
    /// Blocking.
    pub(crate) fn commit(self: &Arc<Self>, req: CommitRequest) -> Result<Image, ImageError> {
        let mut lease = Lease::new(self);
        let (mut layers, mut config) = match &req.parent {
            Some(id) => {
                let parent = self.record(id)?;
                lease.add(
                    &parent.blobs.iter().cloned().collect::<Vec<_>>(),
                    &parent.chain_ids,
                );
                (self.stored_manifest(&parent)?.layers, parent.config.clone())
            }
            // FROM scratch: no layers yet, a config of our platform.
            None => (
                Vec::new(),
                json!({"architecture": self.platform.arch.clone(), "os": "linux"}),
            ),
        };
        if let Some(upper) = &req.upper {
            let new = layer::store_tree(&self.content, upper)?;
            lease.add(std::slice::from_ref(&new.blob), &[]);
            layers.push(new);
        }

        let created = now_rfc3339();
        let created_by = req.created_by.clone().unwrap_or_else(|| {
            req.config
                .get("Cmd")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default()
        });
        config["config"] = req.config.clone();
        config["container_config"] = req.config;
        config["container"] = json!(req.container);
        config["created"] = json!(created);
        config["author"] = json!(req.author);
        config["comment"] = json!(req.comment);
        let mut entry = history_entry(&created, &created_by, &req.author, &req.comment);
        if req.upper.is_none() {
            entry["empty_layer"] = json!(true);
        }
        push_history(&mut config, entry);
        let tags: Vec<String> = req.tag.iter().filter_map(|t| t.tagged_name()).collect();
        let bytes = with_rootfs(config, &layers)?;
        let img = self.record_local(bytes, &layers, &tags, &mut lease)?;
        tracing::info!(image = %img.id, parent = ?req.parent, tags = ?tags, "committed a container");
        Ok(img)
    }

    /// Blocking.
    pub(crate) fn import(
        self: &Arc<Self>,
        req: ImportRequest,
        mut input: TarSource,
    ) -> Result<Image, ImageError> {
        let tmp = self.content.temp_path("import");
        let spooled = std::fs::File::create(&tmp)
            .and_then(|mut f| io::copy(&mut input, &mut f).and_then(|_| f.sync_all()));
        if let Err(e) = spooled {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error("receiving the tarball into", &tmp, e));
        }
        let res = layer::ingest_file(&self.content, &tmp, "the imported tarball");
        let _ = std::fs::remove_file(&tmp);
        let new = res?;
        let mut lease = Lease::new(self);
        lease.add(std::slice::from_ref(&new.blob), &[]);
        let created = now_rfc3339();
        let mut config = json!({
            "architecture": self.platform.arch.clone(),
            "os": "linux",
            "created": created,
            "config": req.config,
        });
        if !req.comment.is_empty() {
            config["comment"] = json!(req.comment);
        }
        let comment = if req.comment.is_empty() {
            "Imported from -"
        } else {
            req.comment.as_str()
        };
        push_history(&mut config, history_entry(&created, "", "", comment));
        let tags: Vec<String> = req.tag.iter().filter_map(|t| t.tagged_name()).collect();
        let layers = [new];
        let bytes = with_rootfs(config, &layers)?;
        let img = self.record_local(bytes, &layers, &tags, &mut lease)?;
        tracing::info!(image = %img.id, tags = ?tags, "imported a tarball");
        Ok(img)
    }
}

fn push_history(config: &mut Value, entry: Value) {
    match config.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(entry),
        None => config["history"] = json!([entry]),
    }
}
