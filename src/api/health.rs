//! A health check that touches every binding, for operators and the integration tests.

use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::http::{Request, Response};

/// # `GET /_stratus/health`
/// D1 answers a query and each Durable Object class answers from its SQLite storage.
pub async fn health_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    #[derive(serde::Deserialize)]
    struct One {
        one: i64,
    }
    let d1: Option<One> = ctx.db.first("SELECT 1 AS one", vec![]).await?;
    let mut objects = serde_json::Map::new();
    for binding in ["USER_KEYS", "ROOM", "USER_SYNC"] {
        objects.insert(binding.into(), durable_object_health(ctx, binding).await?);
    }
    Ok(Response::ok(json!({ "d1": d1.map(|o| o.one == 1), "durable_objects": objects })))
}

async fn durable_object_health(ctx: &Ctx, binding: &str) -> Result<Value> {
    let fail = |e: worker::Error| Error::internal(format!("durable object {binding}: {e}"));
    let ns = ctx.env.durable_object(binding).map_err(fail)?;
    let stub = ns.id_from_name("health").map_err(fail)?.get_stub().map_err(fail)?;
    let mut resp = stub.fetch_with_str("https://do/health").await.map_err(fail)?;
    resp.json::<Value>().await.map_err(fail)
}
