//! Manifest, index and image-config documents (Docker schema2 and OCI), their media types,
//! and how each layer media type is decompressed. Pure parsing; no I/O.

use berth_core::Digest;
use berth_core::image::ImageError;
use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What we send as `Accept` on manifest requests: every format we can use, none we can't.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// OCI index or Docker manifest list.
    Index(Vec<Descriptor>),
    /// OCI image manifest or Docker schema2 manifest.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// How a layer blob is compressed (our own enum so the mapping is testable and independent
/// of the unpacker's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

fn unsupported(reference: &str, message: String) -> ImageError {
    ImageError::Unsupported {
        reference: reference.to_string(),
        message,
    }
}

/// `application/json; charset=utf-8` → `application/json`.
fn bare_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Parses a manifest or index. `content_type` is the HTTP Content-Type or the descriptor's
/// media type when known; the document's own `mediaType` and shape decide otherwise.
pub fn parse(
    bytes: &[u8],
    content_type: Option<&str>,
    reference: &str,
) -> Result<Manifest, ImageError> {
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| unsupported(reference, format!("manifest is not valid JSON: {e}")))?;
    let known = |t: &str| {
        [
            OCI_INDEX,
            OCI_MANIFEST,
            DOCKER_LIST,
            DOCKER_MANIFEST,
            DOCKER_SCHEMA1,
            DOCKER_SCHEMA1_SIGNED,
        ]
        .contains(&t)
    };
    let kind = content_type
        .map(bare_type)
        .filter(|t| known(t))
        .or(raw.media_type.as_deref().filter(|t| known(t)))
        .map(str::to_string);
    let schema1 = || {
        unsupported(
            reference,
            "Docker schema 1 manifests are not supported (deprecated since 2017); push the image again with a current tool".into(),
        )
    };
    match kind.as_deref() {
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED) => return Err(schema1()),
        _ if raw.schema_version == Some(1) => return Err(schema1()),
        _ => {}
    }
    let is_index = match kind.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(_) => false,
        None => raw.manifests.is_some(),
    };
    if is_index {
        let list = raw
            .manifests
            .ok_or_else(|| unsupported(reference, "index has no `manifests`".into()))?;
        return Ok(Manifest::Index(list));
    }
    match (raw.config, raw.layers) {
        (Some(config), Some(layers)) => Ok(Manifest::Image { config, layers }),
        _ => Err(unsupported(
            reference,
            format!(
                "not an image manifest (media type {}): missing `config` or `layers`",
                kind.or(raw.media_type).unwrap_or_else(|| "unknown".into())
            ),
        )),
    }
}

/// True for media types that can stand in an index as a manifest or nested index.
pub fn is_manifest_type(t: &str) -> bool {
    t.is_empty() || [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].contains(&t)
}

/// The decompression for a layer descriptor. Foreign/non-distributable layers and unknown
/// types are refused, since they cannot (or may not) be fetched from the registry.
pub fn layer_compression(
    desc: &Descriptor,
    reference: &str,
) -> Result<LayerCompression, ImageError> {
    let t = desc.media_type.as_str();
    if t.contains("foreign") || t.contains("nondistributable") || !desc.urls.is_empty() {
        return Err(unsupported(
            reference,
            format!(
                "layer {} is a foreign/non-distributable layer ({t}), which berth does not fetch",
                desc.digest
            ),
        ));
    }
    match t {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.oci.image.layer.v1.tar+gzip" => Ok(LayerCompression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(LayerCompression::Zstd),
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(LayerCompression::None),
        _ => Err(unsupported(
            reference,
            format!("layer {} has unsupported media type {t:?}", desc.digest),
        )),
    }
}

/// What berth needs from an image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInfo {
    pub user: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    config: Option<RawRunConfig>,
    rootfs: RawRootfs,
}

#[derive(Deserialize)]
struct RawRunConfig {
    #[serde(rename = "User", default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// Checks the config descriptor's media type (other artifacts, e.g. Helm charts, are not
/// container images).
pub fn check_config_type(desc: &Descriptor, reference: &str) -> Result<(), ImageError> {
    let t = desc.media_type.as_str();
    if t.is_empty() || t == OCI_CONFIG || t == DOCKER_CONFIG {
        Ok(())
    } else {
        Err(unsupported(
            reference,
            format!("not a container image: config media type is {t:?}"),
        ))
    }
}

/// Parses an image config; returns the fields berth uses and the whole JSON.
pub fn parse_config(
    bytes: &[u8],
    reference: &str,
) -> Result<(ConfigInfo, serde_json::Value), ImageError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| unsupported(reference, format!("image config is not valid JSON: {e}")))?;
    let raw: RawConfig = serde_json::from_value(value.clone())
        .map_err(|e| unsupported(reference, format!("image config is malformed: {e}")))?;
    if raw.rootfs.kind != "layers" {
        return Err(unsupported(
            reference,
            format!(
                "image config rootfs.type is {:?}, expected \"layers\"",
                raw.rootfs.kind
            ),
        ));
    }
    let user = raw.config.and_then(|c| c.user).unwrap_or_default();
    Ok((
        ConfigInfo {
            user,
            diff_ids: raw.rootfs.diff_ids,
        },
        value,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn desc(media_type: &str) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: D.parse().unwrap(),
            size: 1,
            urls: vec![],
            platform: None,
        }
    }

    #[test]
    fn layer_media_types() {
        use LayerCompression::*;
        for (t, c) in [
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Zstd),
            ("application/vnd.oci.image.layer.v1.tar", None),
            ("application/vnd.docker.image.rootfs.diff.tar", None),
        ] {
            assert_eq!(layer_compression(&desc(t), "r").unwrap(), c, "{t}");
        }
        for t in [
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            "",
        ] {
            let e = layer_compression(&desc(t), "r").unwrap_err();
            assert!(matches!(e, ImageError::Unsupported { .. }), "{t}: {e}");
        }
        let mut d = desc("application/vnd.oci.image.layer.v1.tar+gzip");
        d.urls = vec!["https://example.com/x".into()];
        assert!(layer_compression(&d, "r").is_err());
    }

    #[test]
    fn manifest_kinds() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D}","size":3}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{D}","size":5}}]}}"#
        );
        let Manifest::Image { config, layers } = parse(m.as_bytes(), None, "r").unwrap() else {
            panic!("not an image")
        };
        assert_eq!((config.size, layers.len()), (3, 1));
        // OCI manifest without mediaType: recognised by shape.
        let m =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":3}},"layers":[]}}"#);
        assert!(matches!(
            parse(m.as_bytes(), None, "r").unwrap(),
            Manifest::Image { .. }
        ));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":9,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let Manifest::Index(list) = parse(i.as_bytes(), Some(OCI_INDEX), "r").unwrap() else {
            panic!("not an index")
        };
        assert_eq!(list[0].platform.as_ref().unwrap().os, "linux");
        let s1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let e = parse(s1.as_bytes(), None, "r").unwrap_err().to_string();
        assert!(e.contains("schema 1"), "{e}");
        let e = parse(
            b"{}",
            Some(&format!("{DOCKER_SCHEMA1_SIGNED}; charset=utf-8")),
            "r",
        );
        assert!(e.unwrap_err().to_string().contains("schema 1"));
        assert!(parse(b"not json", None, "r").is_err());
    }

    #[test]
    fn config_fields() {
        let c = format!(
            r#"{{"config":{{"User":"1000:1000","Env":["A=b"]}},"rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#
        );
        let (info, v) = parse_config(c.as_bytes(), "r").unwrap();
        assert_eq!(info.user, "1000:1000");
        assert_eq!(info.diff_ids.len(), 1);
        assert_eq!(v["config"]["Env"][0], "A=b");
        let c = r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(parse_config(c.as_bytes(), "r").unwrap().0.user, "");
        assert!(parse_config(br#"{"rootfs":{"type":"other"}}"#, "r").is_err());
        assert!(check_config_type(&desc("application/vnd.cncf.helm.config.v1+json"), "r").is_err());
        assert!(check_config_type(&desc(OCI_CONFIG), "r").is_ok());
    }
}
