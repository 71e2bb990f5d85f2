//! Protocol and domain logic. Nothing here imports `worker`: it is unit-tested natively.

pub mod backup;
pub mod config;
pub mod crypto;
pub mod e2ee;
pub mod federation;
pub mod filter;
pub mod ids;
pub mod json;
pub mod media;
pub mod multipart;
pub mod oauth;
pub mod preview;
pub mod profile;
pub mod push;
pub mod ratelimit;
pub mod room;
pub mod signing;
pub mod sliding;
pub mod spaces;
pub mod sync;
pub mod sync_token;
pub mod thumbnail;
pub mod time;
pub mod turn;
pub mod txn;
pub mod uia;
