//! End-to-end encryption keys: one-time and fallback key uploads (shared by `/keys/upload`
//! and dehydrated devices, MSC3814), key queries and claims for our users and other
//! servers' (spec: client-server-api "End-to-End Encryption"; server-server-api "End-to-End
//! Encryption"), and the cache of remote users' device lists.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use ruma::{OwnedServerName, ServerName, UserId};
use serde_json::{json, Map, Value};

use crate::core::e2ee::{self, parse_key_map, UploadedKey};
use crate::core::federation::uri_component;
use crate::core::json::JsonExt;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Method;
use crate::service::deadline::before;
use crate::service::federation::client;
use crate::service::keys::{self, Uploaded};
use crate::store::{e2ee as kstore, remote_devices as rstore};

/// The device's one-time and fallback keys of an upload body. `org.matrix.msc2732.fallback_keys`
/// is the name older clients use.
pub fn uploaded_keys(body: &Value) -> Result<(Vec<UploadedKey>, Vec<UploadedKey>)> {
    let otks = parse_key_map(&body["one_time_keys"], "one_time_keys").map_err(|e| err!(BadJson, "{e}"))?;
    let fb = if body["fallback_keys"].is_null() { &body["org.matrix.msc2732.fallback_keys"] } else { &body["fallback_keys"] };
    let fallbacks = parse_key_map(fb, "fallback_keys").map_err(|e| err!(BadJson, "{e}"))?;
    let mut algs = BTreeSet::new();
    if !fallbacks.iter().all(|k| algs.insert(k.algorithm.clone())) {
        return Err(err!(InvalidParam, "At most one fallback key per algorithm"));
    }
    Ok((otks, fallbacks))
}

/// Stores one-time and fallback keys in the user's `UserKeys` object; returns the counts.
pub async fn store_keys(ctx: &Ctx, user: &str, device: &str, otks: &[UploadedKey], fallbacks: &[UploadedKey]) -> Result<BTreeMap<String, u64>> {
    match keys::upload(&ctx.env, user, device, otks, fallbacks).await? {
        Uploaded::Counts(c) => Ok(c),
        // Synapse's answer: a key ID may not be reused for another key.
        Uploaded::Conflict(id) => Err(err!(InvalidParam, "One time key {id} already exists with a different key")),
    }
}

// ---- key queries and claims, local and across servers ----

/// The four maps of a `/keys/query` answer (`user_signing_keys` only for the requester's own).
#[derive(Default)]
pub struct KeysAnswer {
    pub device_keys: Map<String, Value>,
    pub master_keys: Map<String, Value>,
    pub self_signing_keys: Map<String, Value>,
    pub user_signing_keys: Map<String, Value>,
}

/// The device IDs asked for a user in a `{user_id: [device_id…]}` query (empty: all).
fn asked_devices(wanted: &Map<String, Value>, user: &str) -> Vec<String> {
    wanted.get(user).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
}

/// Our users' device and cross-signing keys (spec: client-server-api `/keys/query`,
/// server-server-api `/user/keys/query`), with the signatures the requester may see: the
/// owner's, and the requester's own (`requester` is `None` for another server: the owner's
/// only, and no user-signing key).
pub async fn local_keys(ctx: &Ctx, wanted: &Map<String, Value>, users: &[String], requester: Option<&str>) -> Result<KeysAnswer> {
    let rows = kstore::query_keys(&ctx.db, users).await?;
    let sigs_for = |user: &str, target: &str| -> Vec<(String, String, String)> {
        rows.signatures
            .iter()
            .filter(|(tu, tk, su, _, _)| tu == user && tk == target && (su == user || Some(su.as_str()) == requester))
            .map(|(_, _, su, sk, s)| (su.clone(), sk.clone(), s.clone()))
            .collect()
    };
    let mut out = KeysAnswer::default();
    for u in users {
        out.device_keys.insert(u.clone(), json!({}));
    }
    for (u, d, key_json, name) in &rows.devices {
        let only = asked_devices(wanted, u);
        if !only.is_empty() && !only.contains(d) {
            continue;
        }
        let Ok(mut k) = serde_json::from_str::<Value>(key_json) else { continue };
        e2ee::add_signatures(&mut k, &sigs_for(u, d));
        // Optional, not nullable: absent for a device without a name.
        k.set(
            "unsigned",
            match name {
                Some(n) => json!({ "device_display_name": n }),
                None => json!({}),
            },
        );
        if let Some(of_user) = out.device_keys.entry(u.clone()).or_insert_with(|| json!({})).as_object_mut() {
            of_user.insert(d.clone(), k);
        }
    }
    for (u, usage, public, key_json) in &rows.cross_signing {
        let Ok(mut k) = serde_json::from_str::<Value>(key_json) else { continue };
        e2ee::add_signatures(&mut k, &sigs_for(u, public));
        match usage.as_str() {
            "master" => {
                out.master_keys.insert(u.clone(), k);
            }
            "self_signing" => {
                out.self_signing_keys.insert(u.clone(), k);
            }
            // Only the owner sees their user-signing key (spec: "user_signing_keys").
            "user_signing" if Some(u.as_str()) == requester => {
                out.user_signing_keys.insert(u.clone(), k);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Claims one key per `(device, algorithm)` of each of our users (`{user: {device: alg}}`),
/// each in the user's `UserKeys` object (so each one-time key goes out once, whoever asks):
/// `{user: {device: {key_id: key}}}`.
pub async fn claim_local(ctx: &Ctx, wanted: &Map<String, Value>, users: &[String]) -> Result<Map<String, Value>> {
    let mut claims: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut total = 0;
    for u in users {
        let per_device = wanted.get(u).and_then(Value::as_object).ok_or_else(|| err!(BadJson, "one_time_keys must map devices to algorithms"))?;
        let mut c = Vec::new();
        for (d, alg) in per_device {
            let alg = alg.as_str().ok_or_else(|| err!(BadJson, "Algorithms must be strings"))?;
            c.push((d.clone(), alg.to_owned()));
        }
        total += c.len();
        claims.push((u.clone(), c));
    }
    if total > 10_000 {
        return Err(err!(InvalidParam, "Too many keys claimed at once"));
    }
    let results = join_all(claims.iter().map(|(u, c)| keys::claim(&ctx.env, u, c))).await;
    let mut out = Map::new();
    for ((u, _), r) in claims.iter().zip(results) {
        let mut per = Map::new();
        for (d, (key_id, key)) in r? {
            per.insert(d, json!({ key_id: key }));
        }
        if !per.is_empty() {
            out.insert(u.clone(), Value::Object(per));
        }
    }
    Ok(out)
}

/// Valid user IDs of a request split into ours and other servers' (by server name);
/// invalid ones are skipped (one odd room member must not fail a client's whole query).
pub fn split_users<'a>(ctx: &Ctx, users: impl Iterator<Item = &'a String>) -> (Vec<String>, BTreeMap<OwnedServerName, Vec<String>>) {
    let mut local = Vec::new();
    let mut remote: BTreeMap<OwnedServerName, Vec<String>> = BTreeMap::new();
    for u in users {
        match crate::core::ids::parse_client_user_id(u) {
            Ok(id) if id.server_name() == ctx.config.server_name => local.push(u.clone()),
            Ok(id) => remote.entry(id.server_name().to_owned()).or_default().push(u.clone()),
            Err(_) => {}
        }
    }
    (local, remote)
}

/// How a server that did not answer shows in `failures` (spec: `/keys/query`, `/keys/claim`).
fn failure(e: Option<crate::error::Error>) -> Value {
    match e {
        Some(e) => json!({ "status": 503, "message": e.to_string() }),
        None => json!({ "status": 503, "message": "Timed out" }),
    }
}

/// The device keys of a remote device as we give them to clients (the display name, if
/// known, in `unsigned`).
fn with_name(mut keys: Value, name: Option<&str>) -> Value {
    if let Some(n) = name {
        let mut unsigned = keys.get("unsigned").filter(|u| u.is_object()).cloned().unwrap_or_else(|| json!({}));
        unsigned.set("device_display_name", json!(n));
        keys.set("unsigned", unsigned);
    }
    keys
}

/// Adds a cached (or just resynced) remote list to an answer.
fn add_list(out: &mut KeysAnswer, wanted: &Map<String, Value>, user: &str, list: &rstore::RemoteList) {
    let only = asked_devices(wanted, user);
    let mut devices = Map::new();
    for d in &list.devices {
        if !only.is_empty() && !only.contains(&d.device_id) {
            continue;
        }
        if let Some(k) = &d.keys {
            devices.insert(d.device_id.clone(), with_name(k.clone(), d.display_name.as_deref()));
        }
    }
    out.device_keys.insert(user.to_owned(), Value::Object(devices));
    if let Some(k) = &list.master_key {
        out.master_keys.insert(user.to_owned(), k.clone());
    }
    if let Some(k) = &list.self_signing_key {
        out.self_signing_keys.insert(user.to_owned(), k.clone());
    }
}

/// Whether a key object claims to belong to `user` (what another server sends about its users
/// must be about those users).
fn about(keys: &Value, user: &str) -> bool {
    keys.get("user_id").and_then(Value::as_str) == Some(user)
}

/// Asks `server` about some of its users: a `/user/devices` resync for each one we track
/// (their cache is then fresh, and kept fresh by their server's updates), one
/// `/user/keys/query` for the others.
async fn query_server(ctx: &Ctx, server: &ServerName, wanted: &Map<String, Value>, resync_users: &[String], ask: &[String]) -> Result<KeysAnswer> {
    let mut out = KeysAnswer::default();
    let lists = join_all(resync_users.iter().map(|u| resync(ctx, u))).await;
    for (u, list) in resync_users.iter().zip(lists) {
        add_list(&mut out, wanted, u, &list?);
    }
    if ask.is_empty() {
        return Ok(out);
    }
    let body = json!({ "device_keys": ask.iter().map(|u| (u.clone(), wanted.get(u).cloned().unwrap_or_else(|| json!([])))).collect::<Map<_, _>>() });
    let answer = client::request(ctx, server, Method::Post, "/_matrix/federation/v1/user/keys/query", Some(&body)).await?;
    for u in ask {
        let devices: Map<String, Value> = answer
            .pointer("/device_keys")
            .and_then(|m| m.get(u))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(d, k)| about(k, u) && k.get("device_id").and_then(Value::as_str) == Some(d.as_str()))
                    .map(|(d, k)| (d.clone(), k.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.device_keys.insert(u.clone(), Value::Object(devices));
        for (field, map) in [("master_keys", &mut out.master_keys), ("self_signing_keys", &mut out.self_signing_keys)] {
            if let Some(k) = answer.get(field).and_then(|m| m.get(u)).filter(|k| about(k, u)) {
                map.insert(u.clone(), k.clone());
            }
        }
    }
    Ok(out)
}

/// Other servers' users of a `/keys/query` (`remote`: by server), merged into `out`: from
/// our cache for tracked users whose cache is fresh, else asked of their servers, all in
/// parallel, each within `timeout_ms`; a server that fails or does not answer in time goes
/// to `failures`.
pub async fn query_remote(
    ctx: &Ctx,
    wanted: &Map<String, Value>,
    remote: &BTreeMap<OwnedServerName, Vec<String>>,
    timeout_ms: u64,
    out: &mut KeysAnswer,
    failures: &mut Map<String, Value>,
) -> Result<()> {
    if remote.is_empty() {
        return Ok(());
    }
    let all: Vec<String> = remote.values().flatten().cloned().collect();
    let (tracked, cached) = futures_util::future::join(rstore::tracked(&ctx.db, ctx.server_name(), &all), rstore::lists(&ctx.db, &all)).await;
    let (tracked, cached) = (tracked?, cached?);
    // A cache of a user no longer sharing a room goes stale silently (their server stops
    // telling us): drop it.
    let untracked_cached: Vec<String> = cached.keys().filter(|u| !tracked.contains(*u)).cloned().collect();
    rstore::forget(&ctx.db, &untracked_cached).await?;
    let deadline = now_ms() + timeout_ms;
    let mut asks = Vec::new();
    for (server, users) in remote {
        let (mut resync_users, mut ask) = (Vec::new(), Vec::new());
        for u in users {
            match cached.get(u) {
                Some(list) if tracked.contains(u) => add_list(out, wanted, u, list),
                _ if tracked.contains(u) => resync_users.push(u.clone()),
                _ => ask.push(u.clone()),
            }
        }
        if !resync_users.is_empty() || !ask.is_empty() {
            asks.push((server, resync_users, ask));
        }
    }
    let answers = join_all(asks.iter().map(|(server, r, a)| before(deadline, query_server(ctx, server, wanted, r, a)))).await;
    for ((server, _, _), answer) in asks.iter().zip(answers) {
        match answer {
            Some(Ok(a)) => {
                out.device_keys.extend(a.device_keys);
                out.master_keys.extend(a.master_keys);
                out.self_signing_keys.extend(a.self_signing_keys);
            }
            Some(Err(e)) => {
                failures.insert(server.to_string(), failure(Some(e)));
            }
            None => {
                failures.insert(server.to_string(), failure(None));
            }
        }
    }
    Ok(())
}

/// Other servers' users of a `/keys/claim`, claimed of their servers in parallel within
/// `timeout_ms`: `{user: {device: {key_id: key}}}` merged into `out`, a server that fails or
/// does not answer in time into `failures`.
pub async fn claim_remote(
    ctx: &Ctx,
    wanted: &Map<String, Value>,
    remote: &BTreeMap<OwnedServerName, Vec<String>>,
    timeout_ms: u64,
    out: &mut Map<String, Value>,
    failures: &mut Map<String, Value>,
) {
    let deadline = now_ms() + timeout_ms;
    let asks = remote.iter().map(|(server, users)| {
        let body =
            json!({ "one_time_keys": users.iter().map(|u| (u.clone(), wanted.get(u).cloned().unwrap_or_else(|| json!({})))).collect::<Map<_, _>>() });
        async move { before(deadline, client::request(ctx, server, Method::Post, "/_matrix/federation/v1/user/keys/claim", Some(&body))).await }
    });
    let answers = join_all(asks).await;
    for ((server, users), answer) in remote.iter().zip(answers) {
        match answer {
            Some(Ok(a)) => {
                for u in users {
                    if let Some(keys) = a.get("one_time_keys").and_then(|m| m.get(u)).filter(|k| k.is_object()) {
                        out.insert(u.clone(), keys.clone());
                    }
                }
            }
            Some(Err(e)) => {
                failures.insert(server.to_string(), failure(Some(e)));
            }
            None => {
                failures.insert(server.to_string(), failure(None));
            }
        }
    }
}

// ---- remote device lists (spec: server-server-api, "Device Management") ----

/// Fetches a remote user's whole device list from their server (`GET /user/devices`),
/// replaces our cache with it, and tells our users who share a room with them.
pub async fn resync(ctx: &Ctx, user: &str) -> Result<rstore::RemoteList> {
    let id = UserId::parse(user).map_err(|_| err!(InvalidParam, "Invalid user ID"))?;
    let path = format!("/_matrix/federation/v1/user/devices/{}", uri_component(user));
    let body = client::request(ctx, id.server_name(), Method::Get, &path, None).await?;
    if body.get("user_id").and_then(Value::as_str) != Some(user) {
        return Err(err!(Unknown, "{} answered about another user", id.server_name()));
    }
    let mut list = rstore::RemoteList {
        stream_id: body.get("stream_id").and_then(Value::as_i64).unwrap_or(0),
        master_key: body.get("master_key").filter(|k| about(k, user)).cloned(),
        self_signing_key: body.get("self_signing_key").filter(|k| about(k, user)).cloned(),
        devices: Vec::new(),
    };
    for d in body.get("devices").and_then(Value::as_array).into_iter().flatten().take(1000) {
        let Some(device_id) = d.get("device_id").and_then(Value::as_str) else { continue };
        list.devices.push(rstore::RemoteDevice {
            device_id: device_id.to_owned(),
            keys: remote_device_keys(d.get("keys"), user, device_id),
            display_name: d.get("device_display_name").and_then(Value::as_str).map(str::to_owned),
        });
    }
    rstore::replace(&ctx.db, user, &list).await?;
    keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await?;
    Ok(list)
}

/// Device keys another server sent for one of its devices, if they are about that device.
pub fn remote_device_keys(keys: Option<&Value>, user: &str, device_id: &str) -> Option<Value> {
    keys.filter(|k| about(k, user) && k.get("device_id").and_then(Value::as_str) == Some(device_id)).cloned()
}
