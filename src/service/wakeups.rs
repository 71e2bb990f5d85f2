//! Sync wake-ups through each user's `UserSync` Durable Object (see
//! `durable_objects/user_sync.rs` for why nothing is lost): writers call [`notify_users`]
//! after their D1 write committed; a waiting `/sync` opens a [`Watch`] before it looks at
//! the stores and waits on it; sliding sync reads the counter with its connection state and
//! [`wait`]s on that value.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_util::future::{join_all, select, Either};
use futures_util::StreamExt;
use ruma::UserId;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Delay, Env, Headers, Method, Request, RequestInit, WebSocket, WebsocketEvent};

use crate::core::config::Config;
use crate::durable_objects::protocol::{
    DeviceSyncState, Protocol, UserSyncProto, UserSyncRequest as Req, UserSyncResponse as Resp, USER_SYNC_DEVICE_HEADER, USER_SYNC_TO_DEVICE_WAKE,
    USER_SYNC_WAIT_HEADER,
};
use crate::error::{Error, Result};
use crate::service::objects::{call, unexpected};

/// Wakes the waiting syncs of these users (local users only; duplicates are skipped). One
/// Durable Object call per user, all in flight at once. Failures are ignored: a missed
/// wake-up only delays a sync to its timeout.
pub async fn notify_users<I: IntoIterator<Item = String>>(env: &Env, config: &Config, users: I) {
    let local: BTreeSet<String> =
        users.into_iter().filter(|u| UserId::parse(u.as_str()).is_ok_and(|u| u.server_name() == config.server_name)).collect();
    join_all(local.iter().map(|u| call::<UserSyncProto>(env, u, &Req::Notify))).await;
}

/// Waits are capped so a client's huge `timeout` cannot pin a request forever.
const MAX_WAIT_MS: u64 = 120_000;

fn fail(e: worker::Error) -> Error {
    Error::internal(format!("{} object: {e}", UserSyncProto::CLASS))
}

/// Sends `request` (`Wait` or `WatchDevice`) as a WebSocket upgrade to the user's object: the
/// socket it parked (with its [`USER_SYNC_DEVICE_HEADER`], if any), or the answer it gave at once.
async fn upgrade(env: &Env, user: &str, request: &Req) -> Result<std::result::Result<(WebSocket, Option<String>), Resp>> {
    crate::store::db::simulated_hop().await;
    let stub = env.durable_object(UserSyncProto::BINDING).map_err(fail)?.id_from_name(user).map_err(fail)?.get_stub().map_err(fail)?;
    let headers = Headers::new();
    headers.set("upgrade", "websocket").map_err(fail)?;
    headers.set(USER_SYNC_WAIT_HEADER, &serde_json::to_string(request)?).map_err(fail)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init("https://object/wait", &init).map_err(fail)?;
    let started = crate::core::time::now_ms();
    let mut resp = stub.fetch_with_request(req).await.map_err(fail)?;
    // Billed like any call: one request (the object answers the upgrade at once).
    if let Some(m) = crate::service::meter::of_env(env) {
        m.durable_object(UserSyncProto::CLASS, crate::core::time::now_ms().saturating_sub(started));
    }
    let status = resp.status_code();
    if status == 101 {
        let state = resp.headers().get(USER_SYNC_DEVICE_HEADER).ok().flatten();
        return resp.websocket().map(|ws| Ok((ws, state))).ok_or_else(unexpected::<UserSyncProto>);
    }
    let text = resp.text().await.map_err(fail)?;
    if status != 200 {
        return Err(Error::from_response(status, &serde_json::from_str(&text).unwrap_or_default()));
    }
    serde_json::from_str(&text).map(Err).map_err(|_| unexpected::<UserSyncProto>())
}

/// Waits until the user's counter moves past `seen` or `timeout_ms` passes. Returns the
/// counter when woken (the value to wait on next), `None` on timeout.
///
/// The wait is a WebSocket to the object, which parks it with the hibernation API: while
/// nobody writes, only this Worker request waits (wall time, not billed CPU) and the object
/// may hibernate. A socket that closes without a message (the object restarted) counts as
/// a wake-up with an unknown counter (`""`, which matches nothing): the caller looks again,
/// and its next wait answers at once with the current counter.
pub async fn wait(env: &Env, user: &str, seen: &str, timeout_ms: u64) -> Result<Option<String>> {
    let ws = match upgrade(env, user, &Req::Wait { seen: seen.to_owned(), timeout_ms }).await? {
        Ok((ws, _)) => ws,
        Err(Resp::Waited { woken, v }) => return Ok(woken.then_some(v)),
        Err(_) => return Err(unexpected::<UserSyncProto>()),
    };
    let mut events = ws.events().map_err(fail)?;
    ws.accept().map_err(fail)?;
    let delay = Delay::from(Duration::from_millis(timeout_ms.min(MAX_WAIT_MS)));
    let woken = match select(events.next(), delay).await {
        Either::Left((Some(Ok(WebsocketEvent::Message(m))), _)) => Some(m.text().unwrap_or_default()),
        // Closed or failed under us: look again (see above).
        Either::Left(_) => Some(String::new()),
        Either::Right(_) => None,
    };
    drop(events);
    let _ = ws.close(Some(1000), Some("done"));
    Ok(woken)
}

/// A socket event listener (kept alive, then removed, by its [`Watch`]).
type Listener = Closure<dyn FnMut(JsValue)>;

/// What a watch's socket reports: a change, messages queued for the device, or that it closed.
enum Event {
    Changed,
    ToDevice,
    Closed,
}

/// A watch on the user's changes (`/sync` long-polling): opened *before* a sync looks at
/// the stores, it hears every change committed after it opened, so a change that lands
/// between the look and the wait is never lost; one socket (one Durable Object request)
/// serves all of the sync's waits, where reading the counter and then waiting took two
/// requests or more.
/// The object parks the socket with the hibernation API, so it is not held active (nor
/// billed for duration) while nothing happens. Closed when dropped.
///
/// The same request tells the sync what it needs from the object besides wake-ups (#17: an
/// idle poll is one Durable Object request): whether the device has to-device messages after
/// the sync's position ([`Watch::take_to_device_due`]), and the device's key counts copy
/// ([`Watch::state`]).
pub struct Watch {
    env: Env,
    user: String,
    device: String,
    since: u64,
    ws: WebSocket,
    rx: UnboundedReceiver<Event>,
    listeners: Vec<(&'static str, Listener)>,
    state: DeviceSyncState,
    /// Messages may wait for the device that the sync has not read yet.
    to_device: bool,
}

impl Watch {
    /// Opens the watch of `device`'s sync at to-device position `since` (one request to the
    /// user's `UserSync` object).
    pub async fn open(env: &Env, user: &str, device: &str, since: u64) -> Result<Watch> {
        let (ws, state) = match upgrade(env, user, &Req::WatchDevice { device_id: device.to_owned(), since }).await? {
            Ok(found) => found,
            Err(_) => return Err(unexpected::<UserSyncProto>()),
        };
        // An object without the header (older code mid-deploy): read the queue every pass.
        let state = state.and_then(|s| serde_json::from_str::<DeviceSyncState>(&s).ok());
        let to_device = state.as_ref().is_none_or(|s| s.to_device_pending);
        let (tx, rx) = unbounded();
        let mut listeners = Vec::new();
        // Listen before accepting: a message is delivered only to the listeners present.
        for (kind, event) in [("message", true), ("close", false), ("error", false)] {
            let tx = tx.clone();
            let f = Listener::new(move |e: JsValue| {
                let to_device = event
                    && js_sys::Reflect::get(&e, &JsValue::from_str("data")).ok().and_then(|d| d.as_string()).as_deref()
                        == Some(USER_SYNC_TO_DEVICE_WAKE);
                let _ = tx.unbounded_send(match (event, to_device) {
                    (true, true) => Event::ToDevice,
                    (true, false) => Event::Changed,
                    (false, _) => Event::Closed,
                });
            });
            ws.as_ref().add_event_listener_with_callback(kind, f.as_ref().unchecked_ref()).map_err(|e| fail(e.into()))?;
            listeners.push((kind, f));
        }
        ws.accept().map_err(fail)?;
        Ok(Watch {
            env: env.clone(),
            user: user.to_owned(),
            device: device.to_owned(),
            since,
            ws,
            rx,
            listeners,
            state: state.unwrap_or_default(),
            to_device,
        })
    }

    /// What the object told when the watch (re)opened: the key counts copy, if fresh.
    pub fn state(&self) -> &DeviceSyncState {
        &self.state
    }

    /// Whether the sync must read the device's to-device queue: messages waited when the
    /// watch opened, or were queued since (each [`Watch::changed`] notes them). Clears the
    /// flag: call it right before reading, so messages queued during the read set it again.
    pub fn take_to_device_due(&mut self) -> bool {
        std::mem::take(&mut self.to_device)
    }

    /// Waits at most `timeout_ms` for a change since the watch opened or since this last
    /// returned `true`; `false` when none came. A socket closed under us (the object
    /// restarted) is reopened and reported as a change, so the caller looks again.
    pub async fn changed(&mut self, timeout_ms: u64) -> Result<bool> {
        let delay = Delay::from(Duration::from_millis(timeout_ms.min(MAX_WAIT_MS)));
        let first = match select(self.rx.next(), delay).await {
            Either::Left((e, _)) => e,
            Either::Right(_) => return Ok(false),
        };
        // Changes already here are covered by the caller's next look.
        let mut closed = false;
        for e in std::iter::once(first).chain(std::iter::from_fn(|| self.rx.try_recv().ok().map(Some))) {
            match e {
                Some(Event::Changed) => {}
                Some(Event::ToDevice) => self.to_device = true,
                Some(Event::Closed) | None => closed = true,
            }
        }
        if closed {
            // The reopened watch knows whether messages wait; keep what this one knew too.
            let due = self.to_device;
            *self = Watch::open(&self.env, &self.user, &self.device, self.since).await?;
            self.to_device |= due;
        }
        Ok(true)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (kind, f) in self.listeners.drain(..) {
            let _ = self.ws.as_ref().remove_event_listener_with_callback(kind, f.as_ref().unchecked_ref());
        }
        let _ = self.ws.close(Some(1000), Some("done"));
    }
}
