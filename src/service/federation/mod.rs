//! Federation (spec: server-server-api): authenticating other servers' requests (`auth`),
//! signed requests to other servers (`client`), their signing keys (`keys`).

pub mod auth;
pub mod client;
pub mod invites;
pub mod templates;
pub mod visibility;
