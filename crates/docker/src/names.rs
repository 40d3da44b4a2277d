//! Docker's way with image names: the "familiar" form it prints (`busybox:latest` for
//! `docker.io/library/busybox:latest`), what it echoes in "No such image" errors, and the
//! reference a pull asks for (`fromImage` + `tag`).

use berth_core::Reference;
use berth_core::reference::DEFAULT_REGISTRY;

use crate::error::ApiError;

/// `docker.io/library/x` → `x`, `docker.io/a/b` → `a/b`; other registries stay.
pub fn familiar(full: &str) -> String {
    match full.strip_prefix("docker.io/") {
        Some(rest) => rest.strip_prefix("library/").unwrap_or(rest).to_string(),
        None => full.to_string(),
    }
}

/// The repository part of a `name:tag` or `name@digest` string.
pub fn repo_of(name: &str) -> &str {
    if let Some((repo, _)) = name.split_once('@') {
        return repo;
    }
    match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => &name[..i],
        _ => name,
    }
}

/// The path that follows the registry, as in dockerd's "Pulling from library/busybox".
pub fn path_of(r: &Reference) -> &str {
    r.repository()
}

/// `r` the way dockerd prints it: familiar, with its tag and/or digest.
pub fn familiar_ref(r: &Reference) -> String {
    let mut s = if r.registry() == DEFAULT_REGISTRY {
        familiar(&r.name())
    } else {
        r.name()
    };
    if let Some(t) = r.tag() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = r.digest() {
        s.push('@');
        s.push_str(&d.to_string());
    }
    s
}

/// True for what dockerd takes as an image id rather than a name: hex only, or
/// `sha256:` and hex.
pub fn looks_like_id(name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    !hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The name as dockerd echoes it in "No such image: …": a reference gains `:latest`.
pub fn shown(name: &str) -> String {
    if looks_like_id(name) && name.len() >= 12 || name.starts_with("sha256:") {
        return name.to_string();
    }
    match name.parse::<Reference>() {
        Ok(r) => familiar_ref(&r),
        Err(_) => name.to_string(),
    }
}

/// The reference `POST /images/create?fromImage=&tag=` asks for. `tag` may be a tag or a
/// digest (the CLI sends `busybox@sha256:…` as fromImage=busybox&tag=sha256:…).
pub fn pull_reference(from_image: &str, tag: Option<&str>) -> Result<Reference, ApiError> {
    let from = from_image.trim();
    if from.is_empty() {
        return Err(ApiError::bad_request(
            "fromImage is empty: name the image to pull",
        ));
    }
    let text = match tag.map(str::trim).filter(|t| !t.is_empty()) {
        None => from.to_string(),
        Some(t) if from.contains('@') || repo_of(from) != from => {
            return Err(ApiError::bad_request(format!(
                "invalid reference: {from} already has a tag or digest, and tag={t} names another"
            )));
        }
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
    };
    text.parse::<Reference>()
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("docker.io/foo/bar:1"), "foo/bar:1");
        assert_eq!(
            familiar("127.0.0.1:5000/busybox:1"),
            "127.0.0.1:5000/busybox:1"
        );
        assert_eq!(
            repo_of("127.0.0.1:5000/busybox:1"),
            "127.0.0.1:5000/busybox"
        );
        assert_eq!(repo_of("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox");
        assert_eq!(repo_of("busybox@sha256:ab"), "busybox");
    }

    #[test]
    fn no_such_image_text() {
        assert_eq!(shown("nosuch"), "nosuch:latest");
        assert_eq!(shown("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
        assert_eq!(shown("0123456789ab"), "0123456789ab");
        assert_eq!(shown("NoSuch"), "NoSuch");
    }

    #[test]
    fn pull_references() {
        let r = pull_reference("busybox", Some("1.36")).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
        let r = pull_reference("127.0.0.1:5000/busybox", None).unwrap();
        assert_eq!(familiar_ref(&r), "127.0.0.1:5000/busybox:latest");
        assert_eq!(path_of(&r), "busybox");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference("busybox", Some(&d)).unwrap();
        assert_eq!(r.digest().map(|x| x.to_string()), Some(d));
        assert!(pull_reference("busybox:1", Some("2")).is_err());
        assert!(pull_reference("", Some("latest")).is_err());
        assert!(pull_reference("Bad", None).is_err());
    }
}
