//! Client-server API handlers.

pub mod account;
pub mod devices;
pub mod discovery;
pub mod login;
pub mod profile;
pub mod register;
pub mod directory;
pub mod membership;
pub mod message;
pub mod rooms;
pub mod state;
pub mod relations;
pub mod room_info;
pub mod upgrade;
pub mod sync;
pub mod account_data;
pub mod typing;
pub mod receipts;
pub mod presence;
pub mod push;
pub mod to_device;
pub mod keys;
pub mod cross_signing;
pub mod dehydrated;
pub mod backup;
