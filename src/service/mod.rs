//! Services shared by handlers and Durable Objects (wasm32 only): the timeline writer and
//! the per-room serialisation through the `Room` Durable Object.

pub mod events;
pub mod keys;
pub mod membership;
pub mod notify;
pub mod objects;
pub mod summary;
pub mod timeline;
pub mod to_device;
pub mod wakeups;
