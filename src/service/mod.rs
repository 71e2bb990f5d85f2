//! The domain layer (wasm32 only): the rules handlers and Durable Objects share. Handlers
//! parse, authorise and shape replies; what a room is (its version's rules, power levels,
//! state at a point, the one write path of events) is decided here and in `core`, and SQL
//! stays in `store`.

pub mod account;
pub mod account_data;
pub mod admin;
pub mod cleanup;
pub mod deadline;
pub mod directory;
pub mod e2ee;
pub mod events;
pub mod federation;
pub mod jwt;
pub mod keys;
pub mod media;
pub mod membership;
pub mod meter;
pub mod notify;
pub mod objects;
pub mod password;
pub mod power;
pub mod profile;
pub mod ratelimit;
pub mod relations;
pub mod rooms;
pub mod session;
pub mod sliding;
pub mod state;
pub mod summary;
pub mod sync;
pub mod timeline;
pub mod to_device;
pub mod wakeups;
