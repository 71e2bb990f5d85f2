//! Simplified sliding sync (MSC4186): one pass over the room list, the window's rooms and
//! the extensions, sharing the per-stream builders of `/sync` v3 (`service::sync`).

pub mod extensions;
