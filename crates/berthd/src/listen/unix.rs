//! berthd's unix sockets (the CRI's, the Docker API's): parent dir created, stale socket
//! replaced, mode and group set.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use futures::{Stream, StreamExt};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use super::fixed_stream::FixedStream;

/// Binds the socket. The caller holds the instance lock, so a socket file found here is stale.
/// `section` (`grpc`, `docker`) names the config keys in errors.
pub fn bind(path: &Path, mode: u32, group: &str, section: &str) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating socket dir {}", dir.display()))?;
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // The instance lock covers the run dir; a socket configured elsewhere may belong
            // to a live server (another berthd, a dockerd): never take it over.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{} is served by another process (a connection to it succeeded); stop that server or set {section}.socket to another path",
                    path.display()
                );
            }
            fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; move it away or set {section}.socket to another path",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:#o} on {}", path.display()))?;
    if !group.is_empty() {
        let g = nix::unistd::Group::from_name(group)
            .with_context(|| format!("looking up group {group:?}"))?
            .with_context(|| format!("{section}.socket_group: no group named {group:?}"))?;
        nix::unistd::chown(path, None, Some(g.gid))
            .with_context(|| format!("chown {} to group {group}", path.display()))?;
    }
    Ok(listener)
}

/// Accepted connections, each wrapped so that odd `:authority` values are repaired.
/// Accept errors (e.g. EMFILE) are logged and skipped rather than ending the server.
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = std::io::Result<FixedStream>> + Send + 'static {
    UnixListenerStream::new(listener).filter_map(|conn| async move {
        match conn {
            Ok(stream) => Some(Ok(FixedStream::new(stream))),
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection on the CRI socket failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn live_sockets_are_kept_stale_ones_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let e = bind(&path, 0o660, "", "docker").unwrap_err().to_string();
        assert!(
            e.contains("served by another process") && e.contains("docker.socket"),
            "{e}"
        );
        drop(live);
        assert!(path.exists(), "a dropped listener leaves its socket file");
        let l = bind(&path, 0o660, "", "docker").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        drop(l);
        fs::write(dir.path().join("f"), b"x").unwrap();
        let e = bind(&dir.path().join("f"), 0o660, "", "grpc")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a socket") && e.contains("grpc.socket"),
            "{e}"
        );
    }
}
