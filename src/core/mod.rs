//! Protocol and domain logic. Nothing here imports `worker`: it is unit-tested natively.

pub mod config;
pub mod crypto;
pub mod ids;
pub mod oauth;
pub mod ratelimit;
pub mod signing;
pub mod time;
pub mod uia;
