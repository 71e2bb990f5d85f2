//! Account administration: deactivation (as the client API's), password resets, shadow bans.

use ruma::UserId;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::{accounts, admin as store};

pub use crate::service::account::{deactivate, leave};

/// Sets a new password; with `logout`, every device and token of the user goes (Synapse's
/// default for the admin reset).
pub async fn set_password(ctx: &Ctx, user: &UserId, password: &str, logout: bool) -> Result<()> {
    if password.is_empty() || password.len() > 512 {
        return Err(crate::err!(InvalidParam, "The password must be 1 to 512 bytes"));
    }
    let hash = crate::service::password::hash(password, ctx.config.pbkdf2_iterations).await?;
    accounts::set_password(&ctx.db, user.as_str(), &hash).await?;
    if logout {
        let devices: Vec<String> = accounts::list_devices(&ctx.db, user.as_str()).await?.into_iter().map(|d| d.device_id).collect();
        crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, user.as_str(), &devices).await?;
        store::delete_all_devices(&ctx.db, user.as_str()).await?;
    }
    Ok(())
}

/// Whether `user`'s sends are dropped: a shadow-banned user's events are answered with an
/// event ID but never stored, so they reach nobody (Synapse's shadow ban).
pub async fn is_shadow_banned(ctx: &Ctx, user: &UserId) -> Result<bool> {
    store::is_shadow_banned(&ctx.db, user.as_str()).await
}
