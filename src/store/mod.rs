//! D1 storage, one module per table group. Handlers call these small async functions so
//! they read like the spec; SQL stays here.

pub mod accounts;
pub mod admin;
pub mod backup;
pub mod cleanup;
pub mod db;
pub mod e2ee;
pub mod edus;
pub mod fanout;
pub mod federation;
pub mod federation_rooms;
pub mod graph;
pub mod media;
pub mod oauth;
pub mod profile;
pub mod pushers;
pub mod remote_devices;
pub mod remote_media;
pub mod rooms;
pub mod servers;
pub mod spaces;
pub mod sync;
pub mod tokens;
pub mod uia;
