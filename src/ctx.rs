//! The per-request context: bindings and configuration, passed to every handler instead of
//! globals (the workers-rs way).

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::core::config::Config;
use crate::error::{Error, Result};
use crate::store::db::Db;

pub struct Ctx {
    pub env: Env,
    pub db: Db,
    pub config: Rc<Config>,
    /// Lets a handler finish work after the response (`waitUntil`); absent in Durable Objects.
    pub wctx: Option<worker::Context>,
}

thread_local! {
    // An isolate serves many requests with the same env; parse the config once.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// The configuration from the environment, parsed once per isolate.
pub fn load_config(env: &Env) -> Result<Rc<Config>> {
    if let Some(c) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(c);
    }
    let c = Rc::new(
        Config::from_lookup(|k| env.secret(k).ok().map(|s| s.to_string()).or_else(|| env.var(k).ok().map(|v| v.to_string())))
            .map_err(|e| Error::internal(format!("configuration: {e}")))?,
    );
    CONFIG.with(|slot| *slot.borrow_mut() = Some(c.clone()));
    crate::store::db::set_simulated_latency_ms(c.simulated_latency_ms);
    Ok(c)
}

impl Ctx {
    pub fn new(env: Env, wctx: Option<worker::Context>) -> Result<Ctx> {
        let config = load_config(&env)?;
        let db = Db::new(env.d1("DB").map_err(|e| Error::internal(format!("D1 binding DB: {e}")))?);
        Ok(Ctx { env, db, config, wctx })
    }

    pub fn server_name(&self) -> &str {
        self.config.server_name.as_str()
    }

    /// KV, for short-lived data (OAuth codes, caches).
    pub fn kv(&self) -> Result<worker::KvStore> {
        self.env.kv("KV").map_err(|e| Error::internal(format!("KV binding: {e}")))
    }

    /// R2, for media.
    pub fn media(&self) -> Result<worker::Bucket> {
        self.env.bucket("MEDIA").map_err(|e| Error::internal(format!("R2 binding: {e}")))
    }
}
