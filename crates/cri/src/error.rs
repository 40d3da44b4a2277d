//! The one mapping from berth's typed errors to gRPC status codes.

use berth_core::image::ImageError;
use berth_engine::{EngineError, ErrorKind};
use tonic::{Code, Status};

pub fn image_error_status(e: ImageError) -> Status {
    let code = match &e {
        ImageError::NotFound(_) | ImageError::RemoteNotFound { .. } => Code::NotFound,
        ImageError::InvalidReference(_) | ImageError::InvalidArgument(_) => Code::InvalidArgument,
        ImageError::Unauthorized { .. } => Code::Unauthenticated,
        ImageError::Registry { .. } => Code::Unavailable,
        ImageError::Verification { .. } => Code::DataLoss,
        ImageError::Unsupported { .. } => Code::FailedPrecondition,
        ImageError::Store(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// For RuntimeService RPCs that a later berth release implements: an honest refusal that
/// names what is missing (pods, containers and exec_sync all work).
pub fn not_yet(method: &str, what: &str) -> Status {
    Status::unimplemented(format!("{method}: berth does not serve {what} yet"))
}

pub fn pod_error_status(e: berth_core::pod::ports::PodError) -> Status {
    use berth_core::pod::ports::PodError;
    match e {
        PodError::InvalidArgument(m) => Status::invalid_argument(m),
        e @ PodError::Failed { .. } => Status::internal(e.to_string()),
    }
}

/// The engine's errors by kind; the message is the engine's own.
pub fn engine_status(e: EngineError) -> Status {
    let code = match e.kind() {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// As [`engine_status`], with a bad request's message saying which RPC refused it.
pub fn engine_status_in(method: &'static str) -> impl Fn(EngineError) -> Status {
    move |e| match e.kind() {
        ErrorKind::InvalidArgument => Status::invalid_argument(format!("{method}: {e}")),
        _ => engine_status(e),
    }
}

pub fn runtime_error_status(e: berth_core::runtime::RuntimeError) -> Status {
    use berth_core::runtime::RuntimeError;
    match e {
        e @ RuntimeError::NotFound(_) => Status::not_found(e.to_string()),
        RuntimeError::InvalidArgument(m) => Status::invalid_argument(m),
        e @ RuntimeError::FailedPrecondition { .. } => Status::failed_precondition(e.to_string()),
        e @ RuntimeError::Failed { .. } => Status::internal(e.to_string()),
    }
}
