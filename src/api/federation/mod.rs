//! Server-server API handlers.

pub mod key;
