//! A health check that touches every binding, for operators and the integration tests.

use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::durable_objects::protocol::{DestinationProto, Protocol, RateLimiterProto, RoomProto, UserKeysProto, UserSyncProto};
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::objects::{call, unexpected};

/// # `GET /_stratus/health`
/// D1 answers a query and each Durable Object class answers from its SQLite storage.
pub async fn health_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    let d1 = crate::store::db::ping(&ctx.db).await?;
    let mut objects = serde_json::Map::new();
    objects.insert(UserKeysProto::BINDING.into(), object_health::<UserKeysProto>(ctx).await?);
    objects.insert(RoomProto::BINDING.into(), object_health::<RoomProto>(ctx).await?);
    objects.insert(UserSyncProto::BINDING.into(), object_health::<UserSyncProto>(ctx).await?);
    objects.insert(DestinationProto::BINDING.into(), object_health::<DestinationProto>(ctx).await?);
    objects.insert(RateLimiterProto::BINDING.into(), object_health::<RateLimiterProto>(ctx).await?);
    Ok(Response::ok(json!({ "d1": d1, "durable_objects": objects })))
}

async fn object_health<P: Protocol>(ctx: &Ctx) -> Result<Value> {
    let health = P::health(call::<P>(&ctx.env, "health", &P::HEALTH).await?).ok_or_else(unexpected::<P>)?;
    Ok(serde_json::to_value(health)?)
}
