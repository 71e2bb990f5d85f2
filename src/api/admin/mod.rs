//! Synapse-compatible admin endpoints that scripts and tools expect.

pub mod provenance;
pub mod register;
