//! The `UserSync` Durable Object: one per user. It wakes the user's waiting `/sync` requests.
//!
//! A change counter (`epoch:n`, the epoch random per instance so that a restarted object
//! never matches an old value) moves on every `Notify` (and every queued to-device batch). A
//! sync reads it (`Version`) *before* it checks the stores, then, finding nothing, waits
//! with `Wait { seen: <that value>, timeout_ms }`: the wait returns at once if the counter
//! has moved since, so a change committed between the check and the wait is never lost.
//!
//! (`/sync` opens a `Watch` instead, before it checks the stores: a socket that hears every
//! later change, so it needs no counter.)
//!
//! A wait costs (almost) nothing while nobody writes (#17): it arrives as a WebSocket
//! upgrade, which the object accepts with the hibernation API (`accept_web_socket`, the
//! waiter's `seen` in the socket's attachment) and returns from at once. With no handler
//! running and only hibernatable sockets open, the object is not billed for duration and the
//! runtime may evict it; the next `Notify` rebuilds it (a new epoch: every waiter is behind
//! it), moves the counter and sends it down every parked socket. The Worker keeps its end
//! until a message comes or its own timeout passes, then closes it. A restart that drops the
//! sockets closes them, which the Worker also reads as a wake-up (see `service::wakeups`).
//!
//! It also keeps the state of the user's sliding sync connections (MSC4186; per device,
//! `conn_id` and `pos`: see `service::sliding`), the user's to-device queues (one stream
//! position per user; a sync's `since` acknowledges and deletes what it covered) and
//! `/sendToDevice` transaction IDs.
//! Protocol: [`UserSyncRequest`] / [`UserSyncResponse`].

use std::cell::Cell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::protocol::{
    DeviceKeyCounts, DeviceSyncState, ToDeviceMessage, UserSyncProto, UserSyncRequest, UserSyncResponse, USER_SYNC_DEVICE_HEADER,
    USER_SYNC_TO_DEVICE_WAKE, USER_SYNC_WAIT_HEADER,
};
use crate::error::Error;

#[durable_object]
pub struct UserSync {
    #[allow(dead_code)]
    state: State,
    version: i64,
    epoch: String,
    counter: Cell<u64>,
    /// Development only (`DO_TRACE` set): logs when the object is built and when each
    /// handler starts and ends, so `bench/idle_device.py` can add up the time it is active.
    trace: bool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS to_device (device_id TEXT NOT NULL, stream_id INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (device_id, stream_id))",
    // The to-device counter survives deleting every delivered message (positions never regress).
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
    // /sendToDevice transaction IDs of this user's devices (idempotent sends).
    "CREATE TABLE IF NOT EXISTS sent_txns (device_id TEXT NOT NULL, txn_id TEXT NOT NULL, PRIMARY KEY (device_id, txn_id))",
    // Sliding sync connections (MSC4186): each device's connection state per `pos`.
    "CREATE TABLE IF NOT EXISTS sliding (device_id TEXT NOT NULL, conn_id TEXT NOT NULL, pos INTEGER NOT NULL, state TEXT NOT NULL, used_ms INTEGER NOT NULL, PRIMARY KEY (device_id, conn_id, pos))",
    // Copies of each device's key counts from the user's `UserKeys` object, at its key
    // generation `gen` (see `DeviceKeyCounts`), so an idle `/sync` asks only this object.
    "CREATE TABLE IF NOT EXISTS key_counts (device_id TEXT PRIMARY KEY, gen INTEGER NOT NULL, counts TEXT NOT NULL, at_ms INTEGER NOT NULL)",
];

/// A key counts copy older than this is not used (`/sync` asks `UserKeys` and refreshes it):
/// a copy missed after a change (its sender failed half-way) is wrong for this long at most.
const KEY_COUNTS_TTL_MS: u64 = 6 * 3600 * 1000;

/// At most this many to-device messages per sync (spec: the rest come in later syncs).
const TO_DEVICE_BATCH: i64 = 100;

/// A sliding sync connection unused this long is forgotten (its next request gets
/// `M_UNKNOWN_POS` and starts afresh).
const SLIDING_EXPIRY_MS: u64 = 7 * 24 * 3600 * 1000;

/// What a parked socket remembers across hibernation (its attachment).
#[derive(serde::Serialize, serde::Deserialize)]
struct Parked {
    /// `None` for a watch.
    seen: Option<String>,
    since_ms: u64,
    /// A device's watch (`WatchDevice`): it hears [`USER_SYNC_TO_DEVICE_WAKE`] for its messages.
    #[serde(default)]
    device: Option<String>,
}

impl UserSync {
    /// One `stratus-do-trace` log line (see `trace`): the event and the object's clock.
    fn trace(&self, event: &str) {
        if self.trace {
            worker::console_log!("stratus-do-trace UserSync {} {} {}", self.epoch, event, crate::core::time::now_ms());
        }
    }

    fn current(&self) -> String {
        format!("{}:{}", self.epoch, self.counter.get())
    }

    /// Moves the counter and sends it to every parked wait (each was behind it). A socket
    /// its Worker already closed fails to send; its close event tidies it up.
    fn wake(&self) {
        self.wake_devices(&[]);
    }

    /// [`Self::wake`], telling the watches of `devices` that messages were queued for them.
    fn wake_devices(&self, devices: &[&str]) {
        self.counter.set(self.counter.get() + 1);
        let v = self.current();
        for ws in self.state.get_websockets() {
            let to_device = !devices.is_empty()
                && ws
                    .deserialize_attachment::<Parked>()
                    .ok()
                    .flatten()
                    .is_some_and(|p| p.seen.is_none() && p.device.is_some_and(|d| devices.contains(&d.as_str())));
            let _ = ws.send_with_str(if to_device { USER_SYNC_TO_DEVICE_WAKE } else { &v });
        }
    }

    /// The device's key counts copy, unless missing or stale.
    fn key_counts(&self, device: &str) -> Result<Option<DeviceKeyCounts>> {
        #[derive(serde::Deserialize)]
        struct K {
            counts: String,
            at_ms: f64,
        }
        let rows: Vec<K> =
            self.state.storage().sql().exec("SELECT counts, at_ms FROM key_counts WHERE device_id = ?", vec![device.into()])?.to_array()?;
        let fresh = |k: &K| crate::core::time::now_ms().saturating_sub(k.at_ms as u64) < KEY_COUNTS_TTL_MS;
        Ok(rows.first().filter(|k| fresh(k)).and_then(|k| serde_json::from_str(&k.counts).ok()))
    }

    /// Keeps copies newer than (or as new as: refreshed) the ones kept.
    fn set_key_counts(&self, counts: &[DeviceKeyCounts]) -> Result<()> {
        let sql = self.state.storage().sql();
        let now = crate::core::time::now_ms() as f64;
        for c in counts {
            let json = serde_json::to_string(c).map_err(|e| worker::Error::RustError(e.to_string()))?;
            sql.exec(
                "INSERT INTO key_counts (device_id, gen, counts, at_ms) VALUES (?, ?, ?, ?)
                 ON CONFLICT (device_id) DO UPDATE SET gen = excluded.gen, counts = excluded.counts, at_ms = excluded.at_ms
                 WHERE excluded.gen >= key_counts.gen",
                vec![c.device_id.clone().into(), (c.gen as f64).into(), json.into(), now.into()],
            )?;
        }
        Ok(())
    }

    /// Whether the device has messages after `since`.
    fn to_device_pending(&self, device: &str, since: u64) -> Result<bool> {
        #[derive(serde::Deserialize)]
        struct C {
            n: f64,
        }
        let rows: Vec<C> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM to_device WHERE device_id = ? AND stream_id > ? LIMIT 1)",
                vec![device.into(), (since as f64).into()],
            )?
            .to_array()?;
        Ok(rows.first().is_some_and(|c| c.n > 0.0))
    }

    /// Queues to-device messages, each at the next position of the user's stream.
    fn enqueue(&self, messages: &[ToDeviceMessage]) -> Result<()> {
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct V {
            v: i64,
        }
        let cur: Vec<V> = sql.exec("SELECT v FROM meta WHERE k = 'to_device'", None)?.to_array()?;
        let mut next = cur.first().map(|r| r.v).unwrap_or(0);
        for m in messages {
            next += 1;
            sql.exec(
                "INSERT INTO to_device (device_id, stream_id, message) VALUES (?, ?, ?)",
                vec![m.device_id.clone().into(), (next as f64).into(), m.message.to_string().into()],
            )?;
        }
        sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('to_device', ?)", vec![(next as f64).into()])?;
        Ok(())
    }

    /// The device's messages after `since`; those up to `since` were delivered and go (unless
    /// `keep`: a dehydrated device's messages stay until the device is replaced).
    fn take(&self, device: &str, since: u64, keep: bool, with_keys: bool) -> Result<UserSyncResponse> {
        let sql = self.state.storage().sql();
        if !keep {
            self.acknowledge(device, since)?;
        }
        #[derive(serde::Deserialize)]
        struct M {
            stream_id: i64,
            message: String,
        }
        let rows: Vec<M> = sql
            .exec(
                "SELECT stream_id, message FROM to_device WHERE device_id = ? AND stream_id > ? ORDER BY stream_id LIMIT ?",
                vec![device.into(), (since as f64).into(), (TO_DEVICE_BATCH as f64).into()],
            )?
            .to_array()?;
        let position = rows.last().map(|r| r.stream_id.max(0) as u64).unwrap_or(since);
        let events: Vec<serde_json::Value> = rows.iter().filter_map(|r| serde_json::from_str(&r.message).ok()).collect();
        let keys = if with_keys { self.key_counts(device)? } else { None };
        Ok(UserSyncResponse::ToDevice { events, position, keys })
    }

    /// Deletes the device's messages up to `since` (the client has them).
    fn acknowledge(&self, device: &str, since: u64) -> Result<()> {
        self.state
            .storage()
            .sql()
            .exec("DELETE FROM to_device WHERE device_id = ? AND stream_id <= ?", vec![device.into(), (since as f64).into()])?;
        Ok(())
    }

    /// Drops the queued messages of deleted devices.
    fn forget(&self, devices: &[String]) -> Result<()> {
        let sql = self.state.storage().sql();
        for d in devices {
            sql.exec("DELETE FROM to_device WHERE device_id = ?", vec![d.clone().into()])?;
            sql.exec("DELETE FROM key_counts WHERE device_id = ?", vec![d.clone().into()])?;
        }
        Ok(())
    }

    /// Drops what is kept for devices not in `keep` (deleted ones whose forget was missed);
    /// returns the to-device messages dropped.
    fn prune(&self, keep: &[String]) -> Result<u64> {
        let sql = self.state.storage().sql();
        let keep = serde_json::to_string(keep).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let gone = "device_id NOT IN (SELECT value FROM json_each(?))";
        #[derive(serde::Deserialize)]
        struct C {
            n: f64,
        }
        let n = sql.exec(&format!("SELECT COUNT(*) AS n FROM to_device WHERE {gone}"), vec![keep.clone().into()])?.to_array::<C>()?;
        for table in ["to_device", "sent_txns", "sliding", "key_counts"] {
            sql.exec(&format!("DELETE FROM {table} WHERE {gone}"), vec![keep.clone().into()])?;
        }
        Ok(n.first().map(|c| c.n as u64).unwrap_or(0))
    }

    /// Records a send transaction; false if the device used it before.
    fn send_txn(&self, device: String, txn: String) -> Result<bool> {
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct C {
            n: i64,
        }
        let seen: Vec<C> = sql
            .exec("SELECT COUNT(*) AS n FROM sent_txns WHERE device_id = ? AND txn_id = ?", vec![device.clone().into(), txn.clone().into()])?
            .to_array()?;
        let new = seen.first().map(|c| c.n == 0).unwrap_or(true);
        if new {
            sql.exec("INSERT INTO sent_txns (device_id, txn_id) VALUES (?, ?)", vec![device.into(), txn.into()])?;
        }
        Ok(new)
    }

    /// A connection's state at `pos`. A request naming `pos` shows the client has that
    /// response, so the connection's other positions go: older ones are superseded, and
    /// newer ones are answers the client never got (it retried).
    fn sliding_load(&self, device: &str, conn: &str, pos: u64) -> Result<Option<String>> {
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct S {
            state: String,
        }
        let key = || -> Vec<worker::SqlStorageValue> { vec![device.into(), conn.into(), (pos as f64).into()] };
        let rows: Vec<S> = sql.exec("SELECT state FROM sliding WHERE device_id = ? AND conn_id = ? AND pos = ?", key())?.to_array()?;
        let Some(found) = rows.into_iter().next() else { return Ok(None) };
        sql.exec("DELETE FROM sliding WHERE device_id = ? AND conn_id = ? AND pos != ?", key())?;
        let mut touch = vec![(crate::core::time::now_ms() as f64).into()];
        touch.extend(key());
        sql.exec("UPDATE sliding SET used_ms = ? WHERE device_id = ? AND conn_id = ? AND pos = ?", touch)?;
        Ok(Some(found.state))
    }

    /// Stores a connection's state under the user's next position (positions are never
    /// reused, so an old `pos` cannot name a newer connection's state).
    fn sliding_save(&self, device: &str, conn: &str, fresh: bool, state: &str) -> Result<u64> {
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct V {
            v: i64,
        }
        let cur: Vec<V> = sql.exec("SELECT v FROM meta WHERE k = 'sliding_pos'", None)?.to_array()?;
        let pos = cur.first().map(|r| r.v).unwrap_or(0) + 1;
        sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('sliding_pos', ?)", vec![(pos as f64).into()])?;
        if fresh {
            sql.exec("DELETE FROM sliding WHERE device_id = ? AND conn_id = ?", vec![device.into(), conn.into()])?;
        }
        let now = crate::core::time::now_ms();
        sql.exec(
            "INSERT INTO sliding (device_id, conn_id, pos, state, used_ms) VALUES (?, ?, ?, ?, ?)",
            vec![device.into(), conn.into(), (pos as f64).into(), state.into(), (now as f64).into()],
        )?;
        sql.exec("DELETE FROM sliding WHERE used_ms < ?", vec![(now.saturating_sub(SLIDING_EXPIRY_MS) as f64).into()])?;
        Ok(pos as u64)
    }

    /// A wait or watch (a WebSocket upgrade): for a wait, `Waited` at once if the counter is
    /// no longer `seen`; else the socket, parked with the hibernation API (`wake` sends it
    /// the counter).
    fn park(&self, seen: Option<String>) -> Result<Response> {
        let v = self.current();
        if seen.as_ref().is_some_and(|s| *s != v) {
            return Response::from_json(&UserSyncResponse::Waited { woken: true, v });
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(Parked { seen, since_ms: crate::core::time::now_ms(), device: None })?;
        Response::from_websocket(pair.client)
    }

    /// A device's watch (`WatchDevice`): parks the socket and answers the [`DeviceSyncState`]
    /// in a header of the 101. No `await` from the look to the accept, so a message queued
    /// after the look reaches the socket. It deletes nothing: the watch opens before the
    /// caller's token is confirmed, and messages up to `since` go with the next read of the
    /// queue (never delivered again meanwhile: reads start after `since`).
    fn park_device(&self, device: String, since: u64) -> Result<Response> {
        let state = DeviceSyncState { to_device_pending: self.to_device_pending(&device, since)?, keys: self.key_counts(&device)? };
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(Parked { seen: None, since_ms: crate::core::time::now_ms(), device: Some(device) })?;
        let json = serde_json::to_string(&state).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let resp = Response::from_websocket(pair.client)?;
        resp.headers().set(USER_SYNC_DEVICE_HEADER, &json)?;
        Ok(resp)
    }

    async fn handle(&self, request: UserSyncRequest) -> crate::Result<UserSyncResponse> {
        Ok(match request {
            UserSyncRequest::Health => UserSyncResponse::Health(super::health::<UserSyncProto>(self.version)),
            UserSyncRequest::Version => UserSyncResponse::Version { v: self.current() },
            UserSyncRequest::Notify => {
                self.wake();
                UserSyncResponse::Version { v: self.current() }
            }
            // Without the upgrade, a wait only says whether the counter moved.
            UserSyncRequest::Wait { seen, .. } => {
                let v = self.current();
                UserSyncResponse::Waited { woken: seen != v, v }
            }
            UserSyncRequest::Watch | UserSyncRequest::WatchDevice { .. } => {
                return Err(crate::err!(BadJson, "UserSync watch needs the WebSocket upgrade"))
            }
            UserSyncRequest::QueueToDevice { messages } => {
                self.enqueue(&messages).map_err(Error::internal)?;
                let mut devices: Vec<&str> = messages.iter().map(|m| m.device_id.as_str()).collect();
                devices.sort_unstable();
                devices.dedup();
                self.wake_devices(&devices);
                UserSyncResponse::Done
            }
            UserSyncRequest::SetKeyCounts { counts } => {
                self.set_key_counts(&counts).map_err(Error::internal)?;
                UserSyncResponse::Done
            }
            UserSyncRequest::TakeToDevice { device_id, since, keep, with_keys } => {
                self.take(&device_id, since, keep, with_keys).map_err(Error::internal)?
            }
            UserSyncRequest::ForgetDevices { device_ids } => {
                self.forget(&device_ids).map_err(Error::internal)?;
                UserSyncResponse::Done
            }
            UserSyncRequest::PruneDevices { keep } => UserSyncResponse::Pruned { removed: self.prune(&keep).map_err(Error::internal)? },
            UserSyncRequest::SendTxn { device_id, txn_id } => {
                UserSyncResponse::Txn { new: self.send_txn(device_id, txn_id).map_err(Error::internal)? }
            }
            UserSyncRequest::SlidingLoad { device_id, conn_id, pos } => {
                let state = match pos {
                    Some(p) => self.sliding_load(&device_id, &conn_id, p).map_err(Error::internal)?,
                    None => None,
                };
                UserSyncResponse::SlidingLoaded { state, v: self.current() }
            }
            UserSyncRequest::SlidingSave { device_id, conn_id, fresh, state } => {
                UserSyncResponse::SlidingSaved { pos: self.sliding_save(&device_id, &conn_id, fresh, &state).map_err(Error::internal)? }
            }
        })
    }
}

impl DurableObject for UserSync {
    fn new(state: State, env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        let epoch = uuid::Uuid::new_v4().simple().to_string().chars().take(8).collect::<String>();
        let trace = env.var("DO_TRACE").is_ok_and(|v| !v.to_string().is_empty());
        let this = Self { state, version, epoch, counter: Cell::new(0), trace };
        this.trace("new");
        this
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.trace("begin");
        if let Some(wait) = req.headers().get(USER_SYNC_WAIT_HEADER)? {
            let answer = match serde_json::from_str::<UserSyncRequest>(&wait) {
                Ok(UserSyncRequest::Wait { seen, .. }) => self.park(Some(seen)),
                Ok(UserSyncRequest::Watch) => self.park(None),
                Ok(UserSyncRequest::WatchDevice { device_id, since }) => self.park_device(device_id, since),
                _ => super::answer::<UserSyncProto>(Err(crate::err!(BadJson, "UserSync wait request"))),
            };
            self.trace("end");
            return answer;
        }
        let result = match super::read::<UserSyncProto>(&mut req).await {
            Ok(request) => self.handle(request).await,
            Err(e) => Err(e),
        };
        self.trace("end");
        super::answer::<UserSyncProto>(result)
    }

    async fn websocket_message(&self, _ws: WebSocket, _message: WebSocketIncomingMessage) -> Result<()> {
        // Waiters never speak; nothing to do (the handler must exist: the default panics).
        self.trace("ws-begin");
        self.trace("ws-end");
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        self.trace("ws-begin");
        // Completes the closing handshake the Worker started (an error means it is done).
        let _ = ws.close(Some(1000), Some("done"));
        self.trace("ws-end");
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.trace("ws-begin");
        let _ = ws.close(Some(1011), Some("error"));
        self.trace("ws-end");
        Ok(())
    }
}
