//! Image references as users type them, normalised the way Docker and containerd do:
//! `busybox` → `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:…`, `name:tag@digest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry that short names resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A fully qualified image reference. `tag` and `digest` may both be present (`name:tag@digest`);
/// then the digest decides what is pulled and the tag is what the image is recorded under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {reference:?} is invalid: {reason}")]
    Invalid { reference: String, reason: String },
}

fn invalid(reference: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    pub fn registry(&self) -> &str {
        &self.registry
    }
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry's manifest endpoint for: the digest when known, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// `name:tag`, when the reference carries a tag.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `name@digest` for a given manifest digest.
    pub fn digested_name(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.name())
    }

    /// The same repository, pinned to a digest (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// A registry host as written in a reference: has a dot, a port, is `localhost`, or is
    /// an IPv6 literal. Anything else is the first path component of a docker.io name.
    fn looks_like_registry(component: &str) -> bool {
        component.contains('.')
            || component.contains(':')
            || component == "localhost"
            || component.starts_with('[')
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    if let Some(rest) = r.strip_prefix('[') {
        // [ipv6]:port
        return rest.contains(']');
    }
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.parse::<u16>().is_err())
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() > 1024 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(input, "contains whitespace or is too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| invalid(input, e.to_string()))?;
                (r, Some(digest))
            }
            None => (s, None),
        };
        // A tag is the text after the last ':' that has no '/' after it.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(invalid(
                input,
                format!("tag {t:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
            ));
        }
        if name.is_empty() {
            return Err(invalid(input, "repository name is empty"));
        }
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, path)) if Reference::looks_like_registry(first) => {
                if !valid_registry(first) {
                    return Err(invalid(
                        input,
                        format!("registry host {first:?} is invalid"),
                    ));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
            _ => registry,
        };
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_path_component(c)) {
            let reason = if bad.chars().any(|c| c.is_ascii_uppercase()) {
                format!("repository path component {bad:?} must be lowercase")
            } else {
                format!(
                    "repository path component {bad:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
                )
            };
            return Err(invalid(input, reason));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid(
                input,
                "repository name is longer than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn short_names_resolve_to_docker_library() {
        assert_eq!(p("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(
            p("busybox:1.36").to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(p("user/app").to_string(), "docker.io/user/app:latest");
        assert_eq!(
            p("docker.io/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(p("index.docker.io/library/busybox").registry(), "docker.io");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let r = p("127.0.0.1:5000/img");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "img");
        assert_eq!(r.tag(), Some("latest"));
        let r = p("localhost/a/b:v1");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("localhost", "a/b", Some("v1"))
        );
        let r = p(&format!("quay.io/x/y@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), D);
        let r = p(&format!("host:5000/x:t@{D}"));
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.tagged_name().unwrap(), "host:5000/x:t");
        assert_eq!(p("[::1]:5000/x").registry(), "[::1]:5000");
        assert_eq!(p("reg.example.com/a/b/c").repository(), "a/b/c");
    }

    #[test]
    fn rejects_invalid_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:xyz",
            "a//b",
            "host:99999/x",
            "busy box",
            "x:-tag",
            "-lead",
            "trail-",
            "a___b",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        let e = "Busybox".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
    }
}
