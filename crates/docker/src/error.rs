//! Docker's errors: a JSON body `{"message": "…"}` with the status code dockerd uses for
//! the kind of failure (404 no such image, 409 conflict, 400 bad parameter, 500 otherwise).
//! The CLI prints the message after "Error response from daemon: ".

use berth_core::image::ImageError;
use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// dockerd's answer for an image name that matches nothing.
    pub fn no_such_image(name: &str) -> Self {
        Self::not_found(format!("No such image: {name}"))
    }
}

/// How dockerd words and codes the failures of a pull and of the image store.
impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        match &e {
            ImageError::NotFound(name) => Self::no_such_image(name),
            ImageError::InvalidReference(_) | ImageError::InvalidArgument(_) => {
                Self::bad_request(e.to_string())
            }
            ImageError::RemoteNotFound {
                reference, message, ..
            } => Self::not_found(format!(
                "manifest for {reference} not found: manifest unknown: {message}"
            )),
            ImageError::Unauthorized { registry, message } => Self::new(
                StatusCode::UNAUTHORIZED,
                format!("unauthorized: registry {registry} refused the credentials: {message}"),
            ),
            ImageError::Unsupported { .. } => Self::bad_request(e.to_string()),
            ImageError::Registry { .. }
            | ImageError::Verification { .. }
            | ImageError::Store(_) => Self::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_get_dockers_codes() {
        let e: ApiError = ImageError::NotFound("busybox:latest".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "No such image: busybox:latest");
        let e: ApiError = ImageError::RemoteNotFound {
            registry: "127.0.0.1:5000".into(),
            reference: "127.0.0.1:5000/x:latest".into(),
            message: "manifest unknown".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(
            e.message
                .starts_with("manifest for 127.0.0.1:5000/x:latest not found")
        );
        let e: ApiError = ImageError::InvalidArgument("bad".into()).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e: ApiError = ImageError::Store("disk".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
