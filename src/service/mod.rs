//! Services shared by handlers and Durable Objects (wasm32 only): the timeline writer and
//! the per-room serialisation through the `Room` Durable Object.

pub mod e2ee;
pub mod events;
pub mod keys;
pub mod membership;
pub mod notify;
pub mod summary;
pub mod sync;
pub mod timeline;
