//! The per-request context: bindings and configuration, passed to every handler instead of
//! globals (the workers-rs way).

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::core::config::Config;
use crate::error::{Error, Result};
use crate::service::meter::{self, Meter};
use crate::store::db::Db;

pub struct Ctx {
    /// The bindings, wrapped per request so that calls through it count on [`Ctx::meter`].
    pub env: Env,
    pub db: Db,
    pub config: Rc<Config>,
    /// Lets a handler finish work after the response (`waitUntil`); absent in Durable Objects.
    pub wctx: Option<worker::Context>,
    /// This request's billable units (issue #17; `service::meter`).
    pub meter: Rc<Meter>,
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
    crate::store::db::set_log_sql(c.dev_log_sql);
    Ok(c)
}

impl Ctx {
    pub fn new(env: Env, wctx: Option<worker::Context>) -> Result<Ctx> {
        let config = load_config(&env)?;
        let meter = Meter::new();
        let db = Db::metered(env.d1("DB").map_err(|e| Error::internal(format!("D1 binding DB: {e}")))?, meter.clone());
        let env = meter::request_env(&env, &meter);
        Ok(Ctx { env, db, config, wctx, meter })
    }

    pub fn server_name(&self) -> &str {
        self.config.server_name.as_str()
    }

    /// KV, for short-lived data (OAuth codes, caches).
    pub fn kv(&self) -> Result<worker::KvStore> {
        // Each operation counts on the meter (KV bills reads and writes).
        let counted = meter::counted_binding(&self.env, "KV", &self.meter, meter::KV_METHODS, meter::count_kv);
        let holder = js_sys::Object::new();
        match counted.map(|c| js_sys::Reflect::set(&holder, &"KV".into(), &c)) {
            Some(Ok(true)) => worker::KvStore::from_this(&holder, "KV").map_err(|e| Error::internal(format!("KV binding: {e}"))),
            _ => self.env.kv("KV").map_err(|e| Error::internal(format!("KV binding: {e}"))),
        }
    }

    /// R2, for media.
    pub fn media(&self) -> Result<worker::Bucket> {
        // Each operation counts on the meter (R2 bills class A and B operations).
        match meter::counted_binding(&self.env, "MEDIA", &self.meter, meter::R2_METHODS, meter::count_r2) {
            Some(counted) => {
                use wasm_bindgen::JsCast;
                Ok(counted.unchecked_into::<worker::Bucket>())
            }
            None => self.env.bucket("MEDIA").map_err(|e| Error::internal(format!("R2 binding: {e}"))),
        }
    }
}
