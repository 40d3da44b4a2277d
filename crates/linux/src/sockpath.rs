//! Unix socket paths longer than `sockaddr_un` allows (108 bytes, e.g. a pod monitor's
//! socket under a long run dir): they are reached through `/proc/<pid>/fd/<n>/<name>`, with
//! `<n>` an `O_PATH` handle on the socket's directory held for as long as the path is used.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest path used as is (the limit is 108 bytes with the terminating NUL).
const MAX_DIRECT: usize = 100;

pub struct SockPath {
    path: PathBuf,
    _dir: Option<File>,
}

impl SockPath {
    /// A path this process can bind or connect to.
    pub fn new(path: &Path) -> io::Result<Self> {
        Self::via(path, "self")
    }

    /// A path other processes (e.g. an OCI runtime given `--console-socket`) can use while
    /// this process holds the returned value.
    pub fn for_others(path: &Path) -> io::Result<Self> {
        Self::via(path, &std::process::id().to_string())
    }

    fn via(path: &Path, pid: &str) -> io::Result<Self> {
        if path.as_os_str().len() <= MAX_DIRECT {
            return Ok(Self {
                path: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path has no directory",
            ));
        };
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)?;
        use std::os::fd::AsRawFd;
        let short = PathBuf::from(format!("/proc/{pid}/fd/{}", handle.as_raw_fd())).join(name);
        Ok(Self {
            path: short,
            _dir: Some(handle),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_bind_and_connect() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("monitor.sock");
        assert!(sock.as_os_str().len() > 108);
        let sp = SockPath::new(&sock).unwrap();
        let l = std::os::unix::net::UnixListener::bind(sp.path()).unwrap();
        assert!(sock.exists(), "the socket file is at the long path");
        let c = SockPath::new(&sock).unwrap();
        std::os::unix::net::UnixStream::connect(c.path()).unwrap();
        drop(l);
        let short = d.path().join("s.sock");
        assert_eq!(SockPath::new(&short).unwrap().path(), short);
    }
}
