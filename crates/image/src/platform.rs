//! Choosing the manifest for our platform from an OCI index / Docker manifest list, with
//! the normalisation containerd applies (`aarch64` = `arm64/v8`, `armhf` = `arm/v7`, ...).

use crate::manifest::{Descriptor, is_manifest_type};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    /// Normalised: `v8` for arm64, `v7` for arm, `v1` for amd64 when not given.
    pub variant: String,
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        let default = matches!(
            (self.arch.as_str(), self.variant.as_str()),
            ("amd64", "v1") | ("arm64", "v8")
        );
        if !self.variant.is_empty() && !default {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// Normalises an (os, arch, variant) triple.
pub fn normalize(os: &str, arch: &str, variant: &str) -> PlatformSpec {
    let os = os.to_ascii_lowercase();
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (arch, variant) = match (arch.as_str(), variant.as_str()) {
        ("x86_64" | "x86-64" | "amd64", "") => ("amd64".to_string(), "v1".to_string()),
        ("x86_64" | "x86-64", v) => ("amd64".to_string(), v.to_string()),
        ("aarch64" | "arm64", "" | "8" | "v8") => ("arm64".to_string(), "v8".to_string()),
        ("aarch64", v) => ("arm64".to_string(), v.to_string()),
        ("armhf", _) => ("arm".to_string(), "v7".to_string()),
        ("armel", _) => ("arm".to_string(), "v6".to_string()),
        ("arm", "") => ("arm".to_string(), "v7".to_string()),
        ("arm", v @ ("5" | "6" | "7" | "8")) => ("arm".to_string(), format!("v{v}")),
        ("i386" | "i686", v) => ("386".to_string(), v.to_string()),
        (a, v) => (a.to_string(), v.to_string()),
    };
    PlatformSpec { os, arch, variant }
}

/// Parses `os/arch[/variant]`.
pub fn parse(s: &str) -> Result<PlatformSpec, String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(normalize(os, arch, "")),
        [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
            Ok(normalize(os, arch, v))
        }
        _ => Err(format!("platform {s:?} must be os/arch or os/arch/variant")),
    }
}

/// `v7` → 7.
fn variant_level(v: &str) -> Option<u32> {
    v.strip_prefix('v').and_then(|n| n.parse().ok())
}

/// How well a candidate fits: `None` when it cannot run here; higher is better. arm and
/// amd64 run older variants (arm/v7 runs v6 and v5; amd64/v3 runs v2 and v1).
fn score(want: &PlatformSpec, have: &PlatformSpec) -> Option<u32> {
    if want.os != have.os || want.arch != have.arch {
        return None;
    }
    if want.variant == have.variant {
        return Some(1000);
    }
    if matches!(want.arch.as_str(), "arm" | "amd64") {
        let (w, h) = (variant_level(&want.variant)?, variant_level(&have.variant)?);
        return (h <= w).then_some(h);
    }
    None
}

/// The best manifest for `want`, the first of equally good ones. Entries without a
/// platform (e.g. attestations) or of other media types are skipped.
pub fn select<'a>(want: &PlatformSpec, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in manifests {
        let Some(p) = &d.platform else { continue };
        if !is_manifest_type(&d.media_type) {
            continue;
        }
        let have = normalize(&p.os, &p.architecture, &p.variant);
        if let Some(s) = score(want, &have)
            && best.is_none_or(|(b, _)| s > b)
        {
            best = Some((s, d));
        }
    }
    best.map(|(_, d)| d)
}

/// `linux/amd64, linux/arm64/v8` for error messages.
pub fn available(manifests: &[Descriptor]) -> String {
    let v: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| normalize(&p.os, &p.architecture, &p.variant).to_string())
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{OCI_MANIFEST, Platform};

    fn d(n: u8, os: &str, arch: &str, variant: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: berth_core::Digest::of(&[n]),
            size: 1,
            urls: vec![],
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.into(),
            }),
        }
    }

    fn pick(want: &str, list: &[Descriptor]) -> Option<u8> {
        let w = parse(want).unwrap();
        select(&w, list).map(|x| list.iter().position(|y| y == x).unwrap() as u8)
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(parse("linux/amd64").unwrap().to_string(), "linux/amd64");
        assert_eq!(parse("linux/amd64").unwrap().variant, "v1");
        assert_eq!(parse("linux/arm/v6").unwrap().to_string(), "linux/arm/v6");
        assert_eq!(parse("linux/arm64").unwrap().variant, "v8");
        assert_eq!(parse("linux/aarch64").unwrap().arch, "arm64");
        assert_eq!(parse("linux/arm").unwrap().variant, "v7");
        assert_eq!(parse("linux/arm/6").unwrap().variant, "v6");
        assert!(parse("linux").is_err());
        assert!(parse("linux//").is_err());
        assert!(parse("a/b/c/d").is_err());
    }

    #[test]
    fn selects_by_os_arch_variant() {
        let list = vec![
            d(0, "unknown", "unknown", ""),
            d(1, "linux", "arm", "v6"),
            d(2, "linux", "arm", "v7"),
            d(3, "linux", "arm64", "v8"),
            d(4, "linux", "amd64", ""),
            d(5, "windows", "amd64", ""),
        ];
        assert_eq!(pick("linux/amd64", &list), Some(4));
        assert_eq!(pick("linux/arm64", &list), Some(3));
        assert_eq!(pick("linux/arm64/v8", &list), Some(3));
        assert_eq!(pick("linux/arm/v7", &list), Some(2));
        assert_eq!(pick("linux/arm/v6", &list), Some(1));
        assert_eq!(pick("linux/arm/v5", &list), None);
        assert_eq!(pick("windows/amd64", &list), Some(5));
        assert_eq!(pick("linux/s390x", &list), None);
    }

    #[test]
    fn missing_variant_defaults_and_compatibility() {
        // arm64 without variant in the index is v8.
        let list = vec![d(0, "linux", "arm64", ""), d(1, "linux", "amd64", "v3")];
        assert_eq!(pick("linux/arm64/v8", &list), Some(0));
        // amd64/v3 images do not run on a baseline amd64 CPU...
        assert_eq!(pick("linux/amd64", &list), None);
        // ...but a v3 host runs them, and prefers them over v1.
        let list = vec![d(0, "linux", "amd64", ""), d(1, "linux", "amd64", "v3")];
        assert_eq!(pick("linux/amd64/v3", &list), Some(1));
        // arm/v7 host runs an arm/v6 image when no v7 exists.
        let list = vec![d(0, "linux", "arm", "v5"), d(1, "linux", "arm", "v6")];
        assert_eq!(pick("linux/arm", &list), Some(1));
        // Entries without platform are skipped; the first of equals wins.
        let mut nop = d(9, "linux", "amd64", "");
        nop.platform = None;
        let list = vec![nop, d(1, "linux", "x86_64", ""), d(2, "linux", "amd64", "")];
        assert_eq!(pick("linux/amd64", &list), Some(1));
        assert_eq!(available(&list), "linux/amd64, linux/amd64");
    }
}
