//! Federation protocol logic (spec: server-server-api), native and unit-tested: the
//! `X-Matrix` authorization header, server-name resolution, remote key documents and the
//! checks a PDU from another server goes through.
//! checks a PDU from another server goes through; the outbound queue's rules (`queue`:
//! destinations, transactions, backoff, catch-up).
pub mod acl;
pub mod discovery;
pub mod http1;
pub mod keys;
pub mod membership;
pub mod pdu;
pub mod queue;
pub mod server_view;
pub mod xmatrix;
