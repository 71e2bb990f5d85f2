//! Synapse-compatible admin endpoints that scripts and tools expect.

pub mod register;
