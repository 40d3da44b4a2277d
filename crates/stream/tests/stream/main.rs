//! The streaming server end to end, over real sockets, with fake sessions on real pipes.

mod common;
mod http;
mod spdy;
mod tls;
mod ws;
