//! Error helpers. `ImageError` is not `Clone` (it wraps a `ReferenceError`), but a shared
//! download's failure must reach every pull that waited on it.

use berth_core::image::ImageError;

/// A copy of `e` with the same variant and text.
pub fn dup(e: &ImageError) -> ImageError {
    match e {
        ImageError::NotFound(s) => ImageError::NotFound(s.clone()),
        ImageError::InvalidReference(r) => ImageError::InvalidArgument(r.to_string()),
        ImageError::InvalidArgument(s) => ImageError::InvalidArgument(s.clone()),
        ImageError::Unauthorized { registry, message } => ImageError::Unauthorized {
            registry: registry.clone(),
            message: message.clone(),
        },
        ImageError::RemoteNotFound {
            registry,
            reference,
            message,
        } => ImageError::RemoteNotFound {
            registry: registry.clone(),
            reference: reference.clone(),
            message: message.clone(),
        },
        ImageError::Registry { registry, message } => ImageError::Registry {
            registry: registry.clone(),
            message: message.clone(),
        },
        ImageError::Verification { digest, message } => ImageError::Verification {
            digest: digest.clone(),
            message: message.clone(),
        },
        ImageError::Unsupported { reference, message } => ImageError::Unsupported {
            reference: reference.clone(),
            message: message.clone(),
        },
        ImageError::Store(s) => ImageError::Store(s.clone()),
    }
}

/// A blocking task that panicked or was cancelled.
pub fn join_error(what: &str, e: tokio::task::JoinError) -> ImageError {
    ImageError::Store(format!("{what}: task failed: {e}"))
}
