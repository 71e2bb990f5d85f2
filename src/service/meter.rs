//! Counts the billable units of one request ([`crate::core::meter::Units`], issue #17).
//!
//! Each [`Ctx`](crate::ctx::Ctx) owns a [`Meter`]. D1 is counted by the [`Db`](crate::store::db::Db)
//! handle that shares it; Durable Object calls by [`crate::service::objects::call`], which finds
//! the meter through the per-request `Env` ([`request_env`]); KV and R2 operations by the
//! bindings [`Ctx::kv`](crate::ctx::Ctx::kv) and [`Ctx::media`](crate::ctx::Ctx::media) hand out,
//! whose methods are wrapped to count each call; outbound fetches by [`outbound`].
//!
//! Work a Durable Object does while answering runs in the object, under its own meter. In local
//! development the objects share the Worker's isolate, so with `DEV_COST_HEADER` on the caller
//! also adds what the isolate-wide total grew by while it waited (exact when requests run one at
//! a time, as `bench/cost.py` sends them). In production the objects run elsewhere and only the
//! Worker's own units are counted.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Object, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use crate::core::meter::{kv_op, r2_op, R2Op, Units};

type Trap = Closure<dyn Fn(JsValue, JsValue, js_sys::Array) -> Result<JsValue, JsValue>>;

/// The units of one request (and the caller's identity, for the log line).
#[derive(Default)]
pub struct Meter {
    id: u32,
    units: RefCell<Units>,
    /// D1 round trips this request's own `Db` made.
    trips: Cell<u32>,
    /// The isolate's outbound fetch count when this meter started.
    sub_at_start: u32,
    user: RefCell<Option<String>>,
    /// The wrappers around KV and R2 methods; they count into this meter and live as long.
    traps: RefCell<Vec<Trap>>,
}

thread_local! {
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
    static LIVE: RefCell<Vec<(u32, Weak<Meter>)>> = const { RefCell::new(Vec::new()) };
    // Everything every meter of this isolate has counted (see the module doc).
    static ISOLATE: RefCell<Units> = RefCell::new(Units::default());
}

const ENV_KEY: &str = "__stratus_meter";

impl Meter {
    pub fn new() -> Rc<Meter> {
        let id = NEXT_ID.with(|n| {
            let id = n.get();
            n.set(id.wrapping_add(1).max(1));
            id
        });
        let sub_at_start = ISOLATE.with(|t| t.borrow().sub);
        let m = Rc::new(Meter { id, sub_at_start, ..Meter::default() });
        LIVE.with(|l| {
            let mut l = l.borrow_mut();
            // Finished requests' meters are gone: forget them.
            l.retain(|(_, w)| w.strong_count() > 0);
            l.push((id, Rc::downgrade(&m)));
        });
        m
    }

    fn record(&self, f: impl Fn(&mut Units)) {
        f(&mut self.units.borrow_mut());
        ISOLATE.with(|t| f(&mut t.borrow_mut()));
    }

    /// One D1 round trip (its statements count through [`Meter::d1_statement`]).
    pub fn d1_trip(&self) {
        self.trips.set(self.trips.get() + 1);
    }

    /// One D1 statement's result meta.
    pub fn d1_statement(&self, meta: Option<worker::D1ResultMeta>) {
        let (r, w) = meta.map_or((0, 0), |m| (m.rows_read.unwrap_or(0) as u64, m.rows_written.unwrap_or(0) as u64));
        self.record(|u| {
            u.d1 += 1;
            u.rows_read += r;
            u.rows_written += w;
        });
    }

    pub fn durable_object(&self, class: &str, ms: u64) {
        self.record(|u| u.add_do(class, ms));
    }

    /// What a Durable Object spent answering (not added to the isolate total again; its
    /// fetches are already in [`Meter::outbound_since_start`]).
    pub fn nested(&self, units: &Units) {
        let mut units = units.clone();
        units.sub = 0;
        self.units.borrow_mut().add(&units);
    }

    /// Outbound fetches the isolate made since this meter started: this request's when no
    /// other request overlaps it (development, `bench/cost.py`).
    pub fn outbound_since_start(&self) -> u32 {
        ISOLATE.with(|t| t.borrow().sub).saturating_sub(self.sub_at_start)
    }

    pub fn round_trips(&self) -> u32 {
        self.trips.get()
    }

    pub fn units(&self) -> Units {
        self.units.borrow().clone()
    }

    pub fn set_user(&self, user_id: &str) {
        *self.user.borrow_mut() = Some(user_id.to_owned());
    }

    pub fn user(&self) -> Option<String> {
        self.user.borrow().clone()
    }
}

/// The isolate-wide total so far.
pub fn isolate_total() -> Units {
    ISOLATE.with(|t| t.borrow().clone())
}

/// A per-request `Env`: the same bindings (its prototype is `env`), plus the meter's ID so
/// that code holding only the `Env` ([`crate::service::objects::call`]) can count.
pub fn request_env(env: &Env, meter: &Meter) -> Env {
    let own = Object::create(env.unchecked_ref::<Object>());
    if Reflect::set(&own, &JsValue::from_str(ENV_KEY), &JsValue::from_f64(f64::from(meter.id))).is_err() {
        return env.clone();
    }
    own.unchecked_into::<Env>()
}

/// The meter of the request `env` was made for ([`request_env`]), if it is still running.
pub fn of_env(env: &Env) -> Option<Rc<Meter>> {
    let id = Reflect::get(env, &JsValue::from_str(ENV_KEY)).ok()?.as_f64()? as u32;
    LIVE.with(|l| l.borrow().iter().find(|(i, _)| *i == id).and_then(|(_, w)| w.upgrade()))
}

/// Counts an outbound `fetch` (a subrequest: federation, push gateways, URL previews, TURN).
/// The fetching code has no request context, so this counts for the isolate; see
/// [`Meter::outbound_since_start`].
pub fn outbound() {
    ISOLATE.with(|t| t.borrow_mut().sub += 1);
}

/// `binding` (a KV namespace or an R2 bucket of `env`) with the methods `counted` names wrapped
/// so that each call counts on `meter`. The wrapper's prototype is the binding, so its class
/// name (which workers-rs checks) is unchanged; each wrapped method calls the real one with
/// the real binding as `this`.
pub fn counted_binding(env: &Env, binding: &str, meter: &Rc<Meter>, methods: &[&'static str], count: fn(&Meter, &str)) -> Option<Object> {
    let real = Reflect::get(env, &JsValue::from_str(binding)).ok().filter(|v| v.is_object())?;
    let wrapper = Object::create(real.unchecked_ref::<Object>());
    for &name in methods {
        let Ok(f) = Reflect::get(&real, &JsValue::from_str(name)) else { continue };
        if !f.is_function() {
            continue;
        }
        let weak = Rc::downgrade(meter);
        let this = real.clone();
        let trap: Trap = Closure::new(move |target: JsValue, _this: JsValue, args: js_sys::Array| {
            if let Some(m) = weak.upgrade() {
                count(&m, name);
            }
            target.unchecked_ref::<js_sys::Function>().apply(&this, &args)
        });
        let handler = Object::new();
        if Reflect::set(&handler, &JsValue::from_str("apply"), trap.as_ref()).is_err() {
            continue;
        }
        let proxy = js_sys::Proxy::new(&f, &handler);
        if Reflect::set(&wrapper, &JsValue::from_str(name), &proxy).is_ok() {
            meter.traps.borrow_mut().push(trap);
        }
    }
    Some(wrapper)
}

/// The KV methods workers-rs calls.
pub const KV_METHODS: &[&str] = &["get", "getWithMetadata", "put", "delete", "list"];
/// The R2 bucket methods workers-rs calls (all of them must be wrapped: an unwrapped one would
/// run with the wrapper as `this`).
pub const R2_METHODS: &[&str] = &["head", "get", "put", "createMultipartUpload", "resumeMultipartUpload", "delete", "list"];

pub fn count_kv(m: &Meter, method: &str) {
    match kv_op(method) {
        Some(true) => m.record(|u| u.kv_r += 1),
        Some(false) => m.record(|u| u.kv_w += 1),
        None => {}
    }
}

pub fn count_r2(m: &Meter, method: &str) {
    match r2_op(method) {
        R2Op::A => m.record(|u| u.r2_a += 1),
        R2Op::B => m.record(|u| u.r2_b += 1),
        R2Op::Free => {}
    }
}
