//! Federation (spec: server-server-api): authenticating other servers' requests (`auth`),
//! signed requests to other servers (`client`, over `fetch` or a TCP `socket`, to where
//! `resolve` says), their signing keys (`keys`), room server ACLs (`acl`); receiving PDUs
//! (`ingest`, through the room's `Room` object: `room`), joining and inviting across servers
//! (`join`, `invite`, `invites`, `templates`), what other servers may read (`visibility`),
//! queries on a client's behalf (`query`) and the outbound queue of our events (`sender`,
//! one `Destination` Durable Object per remote server).

pub mod acl;
pub mod auth;
pub mod client;
pub mod edu;
pub mod ingest;
pub mod invite;
pub mod invites;
pub mod join;
pub mod keys;
pub mod query;
pub mod resolve;
pub mod room;
pub mod sender;
pub mod socket;
pub mod templates;
pub mod visibility;
