//! Response building: JSON bodies, Docker's error body, and streamed bodies (pull progress).

use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;
pub type Reply = Response<Body>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Reply {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `value` as a JSON body with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(mut v) => {
            v.push(b'\n');
            with_type(status, "application/json", full(v))
        }
        Err(e) => error(&ApiError::internal(format!("encoding the response: {e}"))),
    }
}

pub fn ok_json<T: Serialize>(value: &T) -> Reply {
    json(StatusCode::OK, value)
}

pub fn text(status: StatusCode, body: &'static str) -> Reply {
    with_type(status, "text/plain; charset=utf-8", full(body))
}

pub fn no_content(status: StatusCode) -> Reply {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp
}

/// Docker's error body.
pub fn error(e: &ApiError) -> Reply {
    #[derive(Serialize)]
    struct Msg<'a> {
        message: &'a str,
    }
    let body = serde_json::to_vec(&Msg {
        message: &e.message,
    })
    .unwrap_or_else(|_| b"{\"message\":\"internal error\"}".to_vec());
    with_type(e.status, "application/json", full(body))
}

/// A 200 response whose body is the JSON lines sent on `rx` as they come (dockerd's
/// progress streams).
pub fn json_stream(rx: mpsc::UnboundedReceiver<Bytes>) -> Reply {
    stream("application/json", rx)
}

/// A 200 response of `content_type` whose body is the chunks sent on `rx` as they come.
pub fn stream(content_type: &'static str, rx: mpsc::UnboundedReceiver<Bytes>) -> Reply {
    let chunks =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    streamed(content_type, chunks)
}

/// A 200 response of `content_type` whose body is the chunks sent on `rx`; a bounded
/// channel, so the sender waits while the client is behind.
pub fn stream_bounded(content_type: &'static str, rx: mpsc::Receiver<Bytes>) -> Reply {
    let chunks =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    streamed(content_type, chunks)
}

fn streamed(
    content_type: &'static str,
    chunks: impl futures::Stream<Item = Bytes> + Send + 'static,
) -> Reply {
    let frames = chunks.map(|b| Ok::<_, Infallible>(Frame::data(b)));
    with_type(
        StatusCode::OK,
        content_type,
        StreamBody::new(frames).boxed_unsync(),
    )
}

/// One JSON line of a stream.
pub fn line<T: Serialize>(value: &T) -> Bytes {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.extend_from_slice(b"\r\n");
    Bytes::from(v)
}
