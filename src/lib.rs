//! Stratus: a Matrix homeserver for Cloudflare Workers.
//!
//! - [`core`] and [`error`]: protocol and domain logic, no `worker` import, tested natively.
//! - [`http`] and [`router`]: request/response types and the route table, also native.
//! - `api`, `store`, `ctx`, `durable_objects` (wasm32 only): handlers, D1 storage, the
//!   per-request context and the Durable Object classes (`durable_objects::protocol`, the
//!   objects' request and response types, is native).

pub mod core;
pub mod error;
pub mod http;
pub mod router;
pub mod routes;

#[cfg(target_arch = "wasm32")]
pub(crate) mod api;
#[cfg(target_arch = "wasm32")]
pub(crate) mod ctx;
// The classes are wasm32-only (see its `mod.rs`); their protocol types are native.
#[path = "../durable_objects/mod.rs"]
pub mod durable_objects;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
pub(crate) mod service;
#[cfg(target_arch = "wasm32")]
pub(crate) mod store;

pub use error::{Error, ErrorKind, Result};
