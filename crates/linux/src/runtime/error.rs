//! The init's error: which step failed and on what (path, value, errno). Its text is what
//! the monitor shows the user, so every message names the step and the thing it touched.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    pub step: String,
    pub detail: String,
}

impl InitError {
    pub fn new(step: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self {
            step: step.into(),
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

impl std::error::Error for InitError {}

pub type Result<T> = std::result::Result<T, InitError>;

/// `.step("mount /proc")` on any result whose error prints.
pub trait Step<T> {
    fn step(self, step: impl Into<String>) -> Result<T>;
}

impl<T, E: fmt::Display> Step<T> for std::result::Result<T, E> {
    fn step(self, step: impl Into<String>) -> Result<T> {
        self.map_err(|e| InitError::new(step, e))
    }
}

/// The errno text ("No such file or directory") of an errno, like strerror.
pub fn errno_text(errno: nix::errno::Errno) -> String {
    errno.desc().to_string()
}
