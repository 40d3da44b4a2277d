//! What Exec and Attach share: the stdio options check (as the kubelet's streaming server
//! does it) and the registration error mapping.

use berth_core::stream::StreamError;
use tonic::Status;

/// At least one stream, and no stderr with a tty (a terminal has only one output).
pub fn check_streams(
    method: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(format!(
            "{method}: tty and stderr cannot both be true (a terminal merges stderr into stdout)"
        )));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(format!(
            "{method}: one of stdin, stdout, or stderr must be set"
        )));
    }
    Ok(())
}

pub fn stream_error_status(e: StreamError) -> Status {
    match e {
        e @ StreamError::Unavailable(_) => Status::unavailable(e.to_string()),
    }
}
