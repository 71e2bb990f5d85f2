//! The one way to call a Durable Object: [`call`] sends a request of the class's protocol
//! ([`crate::durable_objects::protocol`]) and returns its response, or the error the object
//! answered, rebuilt with the same kind and message ([`Error::from_response`]).

use worker::Env;

use crate::durable_objects::protocol::Protocol;
use crate::error::{Error, Result};

/// Calls the object of class `P` named `name` (a user or room ID) with `request`.
pub async fn call<P: Protocol>(env: &Env, name: &str, request: &P::Request) -> Result<P::Response> {
    let fail = |e: worker::Error| Error::internal(format!("{} object: {e}", P::CLASS));
    crate::store::db::simulated_hop().await;
    let stub = env.durable_object(P::BINDING).map_err(fail)?.id_from_name(name).map_err(fail)?.get_stub().map_err(fail)?;
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post).with_body(Some(wasm_bindgen::JsValue::from_str(&serde_json::to_string(request)?)));
    // Only the body matters: the object routes on the request enum.
    let req = worker::Request::new_with_init("https://object/", &init).map_err(fail)?;
    // Billed: one request to the object, and its duration while this call holds it active.
    let meter = crate::service::meter::of_env(env);
    let nested =
        meter.as_ref().filter(|_| crate::ctx::load_config(env).is_ok_and(|c| c.dev_cost_header)).map(|_| crate::service::meter::isolate_total());
    let started = crate::core::time::now_ms();
    let mut resp = stub.fetch_with_request(req).await.map_err(fail)?;
    let status = resp.status_code();
    let text = resp.text().await.map_err(fail)?;
    if let Some(m) = &meter {
        if let Some(before) = nested {
            m.nested(&crate::service::meter::isolate_total().since(&before));
        }
        m.durable_object(P::CLASS, crate::core::time::now_ms().saturating_sub(started));
    }
    if status == 200 {
        serde_json::from_str(&text).map_err(|e| Error::internal(format!("{} response: {e}", P::CLASS)))
    } else {
        Err(Error::from_response(status, &serde_json::from_str(&text).unwrap_or_default()))
    }
}

/// The error for a response of the wrong variant (a bug, never the client's doing).
pub fn unexpected<P: Protocol>() -> Error {
    Error::internal(format!("{} object: unexpected response", P::CLASS))
}
