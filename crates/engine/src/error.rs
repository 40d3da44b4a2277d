//! The engine's one error type. Each front door maps [`ErrorKind`] to its own protocol
//! (cri: gRPC codes; docker: HTTP statuses) and shows the message as it is.

use berth_core::pod::ports::PodError;
use berth_core::runtime::RuntimeError;

use crate::records::StoreError;

/// What kind of failure, for a front door to pick its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong; retrying it unchanged fails again.
    InvalidArgument,
    NotFound,
    /// A name is in use.
    AlreadyExists,
    /// The object is not in a state that allows this (a stopped pod, a started container).
    FailedPrecondition,
    /// Another request is still creating the same object: retry.
    Unavailable,
    /// Something failed on the node.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::InvalidArgument(_)
            | EngineError::Pod(PodError::InvalidArgument(_))
            | EngineError::Runtime(RuntimeError::InvalidArgument(_))
            | EngineError::Store(StoreError::Ambiguous(_)) => ErrorKind::InvalidArgument,
            EngineError::NotFound(_) | EngineError::Runtime(RuntimeError::NotFound(_)) => {
                ErrorKind::NotFound
            }
            EngineError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            EngineError::FailedPrecondition(_)
            | EngineError::Runtime(RuntimeError::FailedPrecondition { .. }) => {
                ErrorKind::FailedPrecondition
            }
            EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::Internal(_)
            | EngineError::Pod(PodError::Failed { .. })
            | EngineError::Runtime(RuntimeError::Failed { .. })
            | EngineError::Store(_) => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_port_errors() {
        let k = |e: EngineError| e.kind();
        assert_eq!(
            k(PodError::InvalidArgument("x".into()).into()),
            ErrorKind::InvalidArgument
        );
        assert_eq!(k(PodError::failed("net", "x").into()), ErrorKind::Internal);
        assert_eq!(
            k(RuntimeError::NotFound("c".into()).into()),
            ErrorKind::NotFound
        );
        assert_eq!(
            k(StoreError::Ambiguous("ab".into()).into()),
            ErrorKind::InvalidArgument
        );
        // The message is the port's own, unchanged.
        assert_eq!(
            EngineError::from(RuntimeError::NotFound("c".into())).to_string(),
            "container c not found"
        );
    }
}
