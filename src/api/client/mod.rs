//! Client-server API handlers.

pub mod account;
pub mod devices;
pub mod discovery;
pub mod login;
pub mod profile;
pub mod register;
