//! D1 storage, one module per table group. Handlers call these small async functions so
//! they read like the spec; SQL stays here.

pub mod accounts;
pub mod db;
pub mod e2ee;
pub mod media;
pub mod oauth;
pub mod tokens;
pub mod rooms;
pub mod sync;
pub mod uia;
pub mod backup;
