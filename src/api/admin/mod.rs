//! Synapse-compatible admin endpoints that scripts and tools expect (`synadm`, synapse-admin):
//! shared-secret registration, and the admin API proper (issue 18), whose rows are `[Admin]`
//! (the router answers 401 without a token, `403 M_FORBIDDEN` to non-admins). Every action is
//! logged by `service::admin::audit`.

pub mod media;
pub mod notices;
pub mod provenance;
pub mod register;
pub mod reports;
pub mod rooms;
pub mod server;
pub mod tokens;
pub mod users;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::core::admin::{paging, query_bool};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Request;

/// A user ID from the path (`400 M_INVALID_PARAM` if it is not one).
fn user_param(s: &str) -> Result<OwnedUserId> {
    UserId::parse(s).map_err(|_| err!(InvalidParam, "Invalid user ID"))
}

/// A user ID of this server from the path (`400 M_INVALID_PARAM` otherwise: Synapse's "Can
/// only look up local users").
fn local_user_param(ctx: &Ctx, s: &str) -> Result<OwnedUserId> {
    let u = user_param(s)?;
    if u.server_name() != ctx.config.server_name {
        return Err(err!(InvalidParam, "Can only look up local users"));
    }
    Ok(u)
}

fn room_param(s: &str) -> Result<OwnedRoomId> {
    RoomId::parse(s).map_err(|_| err!(InvalidParam, "Invalid room ID"))
}

fn bool_query(req: &Request, name: &str) -> Result<Option<bool>> {
    query_bool(req.query(name)).map_err(|e| err!(InvalidParam, "{name}: {e}"))
}

fn page(req: &Request, default_limit: u32) -> Result<(u64, u32)> {
    paging(req.query("from"), req.query("limit"), default_limit, 1000).map_err(|e| err!(InvalidParam, "{e}"))
}

/// `dir`: `f` (default) or `b`; true for backwards.
fn backwards(req: &Request) -> Result<bool> {
    match req.query("dir") {
        None | Some("f") => Ok(false),
        Some("b") => Ok(true),
        Some(_) => Err(err!(InvalidParam, "dir must be f or b")),
    }
}
