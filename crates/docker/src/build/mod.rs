//! `docker build` with the classic builder (`POST /build`): the context tar from the
//! body, the Dockerfile read by our own parser, each step run on the engine (RUN in a real
//! container) and committed by the image store. No layer cache: every step runs.

mod add;
mod config;
mod context;
pub use context::clean_stale;
mod copy;
mod dockerfile;
pub mod route;
mod run;
mod steps;
