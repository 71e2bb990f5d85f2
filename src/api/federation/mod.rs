//! Server-server API handlers.

pub mod key;
pub mod version;
