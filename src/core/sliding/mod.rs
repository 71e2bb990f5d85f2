//! Simplified sliding sync (MSC4186, `proposals/4186-simplified-sliding-sync.md`): the wire
//! types of the unstable endpoint as matrix-rust-sdk, matrix-js-sdk and Synapse speak it, and
//! the rules that need no I/O (list ordering and windows, room configs, `required_state`,
//! what a connection remembers and what a room needs next).

pub mod conn;
pub mod ext_standin;
pub mod extensions;
pub mod list;
pub mod request;
pub mod response;
pub mod state;
