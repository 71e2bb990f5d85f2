//! Federation (spec: server-server-api): authenticating other servers' requests (`auth`),
//! signed requests to other servers (`client`), their signing keys (`keys`), the outbound
//! queue of our events (`sender`, one `Destination` Durable Object per remote server).

pub mod auth;
pub mod client;
pub mod sender;
