//! Server-server API handlers.

pub mod directory;
pub mod events;
pub mod invite;
pub mod key;
pub mod make;
pub mod media;
pub mod membership;
pub mod query;
pub mod send;
pub mod state;
pub mod user;
pub mod version;
