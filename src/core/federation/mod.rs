//! Federation protocol logic (spec: server-server-api), native and unit-tested: the
//! `X-Matrix` authorization header, server-name resolution, remote key documents and the
//! checks a PDU from another server goes through; the outbound queue's rules (`queue`:
//! destinations, transactions, backoff, catch-up).

pub mod queue;
