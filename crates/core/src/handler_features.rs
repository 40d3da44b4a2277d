//! What each runtime handler can do, as `Status` reports it per handler
//! (`RuntimeHandlerFeatures`) and as CreateContainer/RunPodSandbox check before asking
//! for it. berth's own runtime depends on the kernel; an external OCI runtime tells what it
//! supports through `<runtime> features` (the OCI runtime features document), like
//! containerd reads it.

/// The kernel release as (major, minor), from a `uname -r` string such as "6.1.0-18-amd64".
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `mount_setattr(2)`, which recursive read-only mounts need, came in Linux 5.12.
pub const MOUNT_SETATTR_KERNEL: (u32, u32) = (5, 12);
/// Idmapped overlayfs mounts (the rootfs of a pod with a user namespace) came in 5.19.
pub const IDMAPPED_OVERLAY_KERNEL: (u32, u32) = (5, 19);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HandlerFeatures {
    pub recursive_read_only_mounts: bool,
    pub user_namespaces: bool,
}

impl HandlerFeatures {
    /// berth's own runtime on a kernel of `kernel` version.
    pub fn berth(kernel: Option<(u32, u32)>) -> Self {
        let at_least = |v| kernel.is_some_and(|k| k >= v);
        Self {
            recursive_read_only_mounts: at_least(MOUNT_SETATTR_KERNEL),
            // Pod user namespaces need the container rootfs (overlayfs) idmapped.
            user_namespaces: at_least(IDMAPPED_OVERLAY_KERNEL),
        }
    }

    /// An OCI runtime from its `features` JSON (None: it has no `features` command, as
    /// crun before 1.11). `rro` must be among its mount options; user namespaces need
    /// idmapped mounts (`linux.mountExtensions.idmap.enabled`), as containerd decides.
    pub fn oci(features: Option<&serde_json::Value>, kernel: Option<(u32, u32)>) -> Self {
        let Some(f) = features else {
            return Self::default();
        };
        let kernel_ok = |v| kernel.is_some_and(|k| k >= v);
        let rro = f
            .get("mountOptions")
            .and_then(|o| o.as_array())
            .is_some_and(|o| o.iter().any(|v| v.as_str() == Some("rro")));
        let idmap = f
            .pointer("/linux/mountExtensions/idmap/enabled")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Self {
            recursive_read_only_mounts: rro && kernel_ok(MOUNT_SETATTR_KERNEL),
            user_namespaces: idmap && kernel_ok(IDMAPPED_OVERLAY_KERNEL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("5.19.17"), Some((5, 19)));
        assert_eq!(kernel_version("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn berth_follows_the_kernel() {
        let f = HandlerFeatures::berth(Some((5, 15)));
        assert!(f.recursive_read_only_mounts && !f.user_namespaces);
        assert_eq!(
            HandlerFeatures::berth(Some((4, 19))),
            HandlerFeatures::default()
        );
        let f = HandlerFeatures::berth(Some((6, 1)));
        assert!(f.recursive_read_only_mounts && f.user_namespaces);
    }

    #[test]
    fn oci_runtime_from_its_features() {
        // runc 1.1.5: rro, but no idmapped mounts section.
        let runc = serde_json::json!({"mountOptions": ["ro", "rro", "rbind"], "linux": {}});
        let f = HandlerFeatures::oci(Some(&runc), Some((6, 1)));
        assert!(f.recursive_read_only_mounts && !f.user_namespaces);
        assert!(!HandlerFeatures::oci(Some(&runc), Some((5, 4))).recursive_read_only_mounts);
        let newer = serde_json::json!({"mountOptions": ["rro"],
            "linux": {"mountExtensions": {"idmap": {"enabled": true}}}});
        let f = HandlerFeatures::oci(Some(&newer), Some((6, 1)));
        assert!(f.recursive_read_only_mounts && f.user_namespaces);
        assert_eq!(
            HandlerFeatures::oci(None, Some((6, 1))),
            HandlerFeatures::default()
        );
    }
}
