//! Server-server API handlers.

pub mod key;
pub mod membership;
pub mod send;
pub mod version;
