//! Server-server API handlers.

pub mod directory;
pub mod events;
pub mod invite;
pub mod key;
pub mod make;
pub mod query;
pub mod state;
