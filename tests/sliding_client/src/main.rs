//! A Matrix client built on matrix-sdk + matrix-sdk-ui (the engine inside Element X), syncing
//! only with simplified sliding sync (MSC4186) through `SyncService` (which runs the
//! `RoomListService` and the encryption sync side by side, as Element X does). The tests in
//! tests/integration/clients/ run one scenario per process and read what it prints.
//!
//! Output: one JSON object per line on stdout, each with an `event` field; the last one is
//! `{"event": "done", ...}` (exit 0) or `{"event": "error", "error": "...", "step": "..."}`
//! (exit 1). Logs go to stderr (`RUST_LOG`, default `warn`). Every wait is bounded.
//!
//! Scenarios (all take `--homeserver URL`):
//!   room-list --user U --password P --expect N [--top ROOM --body TEXT]
//!       The `all_rooms` list as `RoomListService` sorts it once it holds N rooms, each joined
//!       one with its latest event (`rooms`). With `--top`: prints `ready`, then waits until
//!       ROOM is first with the latest event TEXT (the test sends it) and prints `top`.
//!   accept-invite --user U --password P --room ROOM
//!       Waits for ROOM in the list as an invite (`invited`), joins it through the SDK and
//!       waits until the list shows it joined (`joined`).
//!   e2ee --alice U --alice-password P --bob U --bob-password P
//!       Alice and Bob (one device each, Bob's cross-signed) in a room Alice creates encrypted;
//!       Bob decrypts Alice's message in his `Timeline` (`decrypted`). Bob's second device
//!       logs in: both Bob's first device and Alice see it, not cross-signed (`new_device`);
//!       Bob's first device signs it and Alice sees it cross-signed by its owner
//!       (`device_verified`); Alice's next message decrypts on the new device too.

#![recursion_limit = "256"]

use std::{collections::HashMap, future::Future, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use eyeball_im::Vector;
use futures_util::{pin_mut, StreamExt};
use matrix_sdk::{
    latest_events::LatestEventValue,
    ruma::{
        api::client::{
            room::create_room::v3::Request as CreateRoomRequest,
            uiaa::{AuthData, MatrixUserIdentifier, Password, UserIdentifier},
        },
        events::{
            room::{encryption::RoomEncryptionEventContent, message::RoomMessageEventContent},
            InitialStateEvent,
        },
        OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId,
    },
    BaseRoom, Client, Room, RoomState,
};
use matrix_sdk_ui::{
    room_list_service::{filters, RoomListItem},
    sync_service::{self, SyncService},
    timeline::RoomExt as _,
};
use serde_json::{json, Value};
use tokio::{sync::watch, time::timeout};

/// Longest wait of one step; a scenario is a handful of steps.
const STEP_SECS: u64 = 45;

fn emit(v: Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Result<Self> {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(k) = it.next() {
            let key = k.strip_prefix("--").ok_or_else(|| anyhow!("unexpected argument {k}"))?;
            let value = it.next().ok_or_else(|| anyhow!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    fn get(&self, key: &str) -> Result<&str> {
        self.0.get(key).map(String::as_str).ok_or_else(|| anyhow!("missing --{key}"))
    }

    fn opt(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// The step being run, for the error line.
static STEP: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Runs one step with a deadline; its name goes into the error if it fails.
async fn step<T>(name: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    if let Ok(mut s) = STEP.lock() {
        *s = name.to_owned();
    }
    match timeout(Duration::from_secs(STEP_SECS), fut).await {
        Ok(r) => r,
        Err(_) => bail!("timed out after {STEP_SECS}s"),
    }
}

/// Polls `f` every 100 ms until it gives a value (the caller's `step` bounds it).
async fn poll<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A logged-in device with its `SyncService` running.
struct Session {
    client: Client,
    sync: SyncService,
    rooms: watch::Receiver<Vector<RoomListItem>>,
}

impl Session {
    async fn start(homeserver: &str, user: &str, password: &str, device_name: &str) -> Result<Self> {
        let client = Client::builder().homeserver_url(homeserver).build().await.context("client")?;
        client.matrix_auth().login_username(user, password).initial_device_display_name(device_name).await.context("login")?;
        let sync = SyncService::builder(client.clone()).build().await.context("SyncService")?;
        sync.start().await;
        let rooms = watch_room_list(&sync);
        Ok(Self { client, sync, rooms })
    }

    fn user_id(&self) -> Result<OwnedUserId> {
        self.client.user_id().map(ToOwned::to_owned).ok_or_else(|| anyhow!("not logged in"))
    }

    fn device_id(&self) -> Result<OwnedDeviceId> {
        self.client.device_id().map(ToOwned::to_owned).ok_or_else(|| anyhow!("not logged in"))
    }

    /// Fails if the sync service stopped with an error (so a broken server shows as such, not as
    /// a timeout).
    fn check_sync(&self) -> Result<()> {
        match self.sync.state().get() {
            sync_service::State::Error(e) => Err(anyhow!("SyncService failed: {e:?}")),
            _ => Ok(()),
        }
    }

    /// Waits until the sorted room list satisfies `pred`; returns it.
    async fn wait_rooms(&self, pred: impl Fn(&Vector<RoomListItem>) -> bool) -> Result<Vector<RoomListItem>> {
        let mut rx = self.rooms.clone();
        loop {
            self.check_sync()?;
            {
                let items = rx.borrow_and_update();
                if pred(&items) {
                    return Ok(items.clone());
                }
            }
            // Also wake up now and then to notice a failed sync service.
            let _ = timeout(Duration::from_millis(500), rx.changed()).await;
        }
    }

    fn current_rooms(&self) -> Value {
        rooms_json(&self.rooms.borrow())
    }

    /// The room the SDK knows, once it has it in `state`.
    async fn wait_room(&self, room_id: &RoomId, state: RoomState) -> Result<Room> {
        poll(|| async {
            self.check_sync()?;
            Ok(self.client.get_room(room_id).filter(|r| r.state() == state))
        })
        .await
    }

    /// Subscribes to the room as Element X does when it is opened, then waits until its
    /// `Timeline` shows a decrypted text message `body`; returns that event's facts.
    async fn wait_decrypted(&self, room: &Room, body: &str) -> Result<Value> {
        self.sync.room_list_service().subscribe_to_rooms(&[room.room_id()]).await;
        let timeline = room.timeline().await.context("timeline")?;
        // What the timeline showed last, for the error.
        let last = std::sync::Mutex::new(Value::Null);
        let r = timeout(Duration::from_secs(STEP_SECS - 5), async {
            poll(|| async {
                self.check_sync()?;
                let items = timeline.items().await;
                let events: Vec<_> = items.iter().filter_map(|i| i.as_event()).collect();
                let shown = Value::Array(
                    events
                        .iter()
                        .map(|e| {
                            json!({
                                "sender": e.sender().as_str(),
                                "body": e.content().as_message().map(|m| m.body()),
                                "utd": e.content().is_unable_to_decrypt(),
                            })
                        })
                        .collect(),
                );
                if let Ok(mut l) = last.lock() {
                    *l = shown;
                }
                Ok(events.iter().find(|e| e.content().as_message().is_some_and(|m| m.body() == body)).map(|e| {
                    json!({
                        "event_id": e.event_id().map(|id| id.as_str()),
                        "sender": e.sender().as_str(),
                        "body": body,
                        "encrypted": e.encryption_info().is_some(),
                    })
                }))
            })
            .await
        })
        .await;
        match r {
            Ok(v) => v,
            Err(_) => bail!("no decrypted {body:?} in the timeline; it shows {}", last.lock().map(|l| l.clone()).unwrap_or_default()),
        }
    }

    /// The device as this client's crypto store sees it, once it knows it (it learns about new
    /// devices through the e2ee extension's `device_lists.changed`) and `pred` holds.
    async fn wait_device(&self, user: &OwnedUserId, device: &OwnedDeviceId, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        poll(|| async {
            self.check_sync()?;
            let devices = self.client.encryption().get_user_devices(user).await?;
            let Some(d) = devices.get(device) else { return Ok(None) };
            let v = json!({
                "user_id": user.as_str(),
                "device_id": device.as_str(),
                "cross_signed_by_owner": d.is_cross_signed_by_owner(),
                "verified": d.is_verified(),
                "devices_known": devices.devices().map(|d| d.device_id().to_string()).collect::<Vec<_>>(),
            });
            Ok(pred(&v).then_some(v))
        })
        .await
    }
}

/// Keeps the current `all_rooms` entries (sorted and filtered as Element X does: non-left
/// rooms, by latest event then recency then name) in a watch channel, and computes the latest
/// event of each room that shows up.
fn watch_room_list(sync: &SyncService) -> watch::Receiver<Vector<RoomListItem>> {
    let (tx, rx) = watch::channel(Vector::new());
    let service = sync.room_list_service();
    tokio::spawn(async move {
        let list = match service.all_rooms().await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("all_rooms: {e}");
                return;
            }
        };
        let (stream, controller) = list.entries_with_dynamic_adapters(10_000);
        controller.set_filter(Box::new(filters::new_filter_non_left()));
        pin_mut!(stream);
        let mut items: Vector<RoomListItem> = Vector::new();
        let latest = service.client().latest_events().await;
        let mut listening = std::collections::HashSet::new();
        while let Some(diffs) = stream.next().await {
            for diff in diffs {
                diff.apply(&mut items);
            }
            for item in &items {
                if listening.insert(item.room_id().to_owned()) {
                    let _ = latest.listen_to_room(item.room_id()).await;
                }
            }
            if tx.send(items.clone()).is_err() {
                break;
            }
        }
    });
    rx
}

fn latest_json(v: LatestEventValue) -> Value {
    match v {
        LatestEventValue::None => Value::Null,
        LatestEventValue::Remote(ev) => {
            let raw: Value = serde_json::from_str(ev.raw().json().get()).unwrap_or(Value::Null);
            json!({
                "kind": "remote",
                "event_id": raw.get("event_id"),
                "type": raw.get("type"),
                "sender": raw.get("sender"),
                "body": raw.get("content").and_then(|c| c.get("body")),
                "origin_server_ts": raw.get("origin_server_ts"),
            })
        }
        LatestEventValue::RemoteInvite { inviter, .. } => json!({"kind": "invite", "inviter": inviter}),
        _ => json!({"kind": "local"}),
    }
}

fn room_json(r: &Room) -> Value {
    json!({
        "room_id": r.room_id().as_str(),
        "name": r.cached_display_name().map(|n| n.to_string()),
        "state": format!("{:?}", r.state()),
        "recency_stamp": r.recency_stamp().map(u64::from),
        "joined_count": r.joined_members_count(),
        "latest_event": latest_json(BaseRoom::latest_event(r)),
    })
}

fn rooms_json(items: &Vector<RoomListItem>) -> Value {
    Value::Array(items.iter().map(|i| room_json(i)).collect())
}

fn latest_body(r: &Room) -> Option<String> {
    match BaseRoom::latest_event(r) {
        LatestEventValue::Remote(ev) => {
            let raw: Value = serde_json::from_str(ev.raw().json().get()).ok()?;
            raw.get("content")?.get("body")?.as_str().map(ToOwned::to_owned)
        }
        _ => None,
    }
}

/// Whether the list is in the order of its rooms' latest events (most recent first).
fn sorted_by_latest(items: &Vector<RoomListItem>) -> bool {
    let stamps: Vec<_> = items.iter().map(|r| BaseRoom::latest_event(r).timestamp()).collect();
    stamps.windows(2).all(|w| w.first() >= w.get(1))
}

async fn room_list(args: &Args) -> Result<()> {
    let expect: usize = args.get("expect")?.parse().context("--expect")?;
    let s = step("login", Session::start(args.get("homeserver")?, args.get("user")?, args.get("password")?, "room-list")).await?;
    // Loaded: all N rooms are listed, each joined one has its latest event, and the list is
    // sorted by them (the SDK sorts on cached copies refreshed asynchronously, so the first
    // list holding every latest event may still be in a provisional order).
    let loaded = step(
        "load room list",
        s.wait_rooms(|items| {
            items.len() >= expect
                && items.iter().all(|r| r.state() != RoomState::Joined || matches!(BaseRoom::latest_event(r), LatestEventValue::Remote(_)))
                && sorted_by_latest(items)
        }),
    )
    .await
    .map_err(|e| anyhow!("{e}; the list shows {}", s.current_rooms()))?;
    emit(json!({"event": "rooms", "rooms": rooms_json(&loaded)}));
    if let Some(top) = args.opt("top") {
        let body = args.get("body")?;
        emit(json!({"event": "ready"}));
        let moved = step(
            "room moves to the top",
            s.wait_rooms(|items| {
                items.front().is_some_and(|r| r.room_id().as_str() == top && latest_body(r).as_deref() == Some(body)) && sorted_by_latest(items)
            }),
        )
        .await
        .map_err(|e| anyhow!("{e}; the list shows {}", s.current_rooms()))?;
        emit(json!({"event": "top", "rooms": rooms_json(&moved)}));
    }
    s.sync.stop().await;
    Ok(())
}

async fn accept_invite(args: &Args) -> Result<()> {
    let room_id = args.get("room")?.to_owned();
    let s = step("login", Session::start(args.get("homeserver")?, args.get("user")?, args.get("password")?, "accept-invite")).await?;
    // Listed as an invite: with its name and inviter (from `invite_state`).
    let invited = |items: &Vector<RoomListItem>| {
        items.iter().any(|r| {
            r.room_id().as_str() == room_id
                && r.state() == RoomState::Invited
                && r.cached_display_name().is_some()
                && matches!(BaseRoom::latest_event(r), LatestEventValue::RemoteInvite { .. })
        })
    };
    // Joined as the server says: the SDK marks the room joined as soon as its /join returns,
    // while `joined_count` comes only from a sliding sync response.
    let joined = |items: &Vector<RoomListItem>| {
        items.iter().any(|r| r.room_id().as_str() == room_id && r.state() == RoomState::Joined && r.joined_members_count() >= 2)
    };
    let items = step("invite in the room list", s.wait_rooms(invited)).await.map_err(|e| anyhow!("{e}; the list shows {}", s.current_rooms()))?;
    let invited = items.iter().find(|r| r.room_id().as_str() == room_id).map(|r| room_json(r));
    emit(json!({"event": "invited", "room": invited}));
    let room = items.iter().find(|r| r.room_id().as_str() == room_id).map(|r| (**r).clone()).ok_or_else(|| anyhow!("gone"))?;
    step("join", async { room.join().await.context("join") }).await?;
    let items = step("joined in the room list", s.wait_rooms(joined)).await.map_err(|e| anyhow!("{e}; the list shows {}", s.current_rooms()))?;
    let joined = items.iter().find(|r| r.room_id().as_str() == room_id).map(|r| room_json(r));
    emit(json!({"event": "joined", "room": joined}));
    s.sync.stop().await;
    Ok(())
}

/// Bob's cross-signing keys: first without auth (MSC3967), with his password after a 401.
async fn bootstrap_cross_signing(s: &Session, password: &str) -> Result<()> {
    let enc = s.client.encryption();
    // The olm machine exists once logged in; its keys are uploaded by the encryption sync.
    if let Err(e) = enc.bootstrap_cross_signing(None).await {
        let uiaa = e.as_uiaa_response().ok_or_else(|| anyhow!("cross-signing bootstrap: {e}"))?;
        let mut pw = Password::new(UserIdentifier::Matrix(MatrixUserIdentifier::new(s.user_id()?.to_string())), password.to_owned());
        pw.session = uiaa.session.clone();
        enc.bootstrap_cross_signing(Some(AuthData::Password(pw))).await.context("cross-signing bootstrap with password")?;
    }
    Ok(())
}

async fn e2ee(args: &Args) -> Result<()> {
    let hs = args.get("homeserver")?;
    let (bob_user, bob_pw) = (args.get("bob")?, args.get("bob-password")?);
    let alice = step("alice login", Session::start(hs, args.get("alice")?, args.get("alice-password")?, "alice")).await?;
    let bob = step("bob login", Session::start(hs, bob_user, bob_pw, "bob-1")).await?;
    let (alice_id, bob_id, bob1) = (alice.user_id()?, bob.user_id()?, bob.device_id()?);
    step("bob cross-signing", bootstrap_cross_signing(&bob, bob_pw)).await?;
    emit(json!({"event": "logged_in", "alice": alice_id.as_str(), "bob": bob_id.as_str(), "bob_device": bob1.as_str()}));

    let room = step("alice creates an encrypted room", async {
        let mut req = CreateRoomRequest::new();
        req.name = Some("sliding e2ee".to_owned());
        req.invite = vec![bob_id.clone()];
        req.initial_state = vec![InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults()).to_raw_any()];
        alice.client.create_room(req).await.context("create_room")
    })
    .await?;
    let room_id: OwnedRoomId = room.room_id().to_owned();
    let bob_room = step("bob sees the invite", bob.wait_room(&room_id, RoomState::Invited)).await?;
    step("bob joins", async { bob_room.join().await.context("join") }).await?;
    step("alice sees bob joined", async {
        poll(|| async {
            alice.check_sync()?;
            Ok((room.joined_members_count() >= 2).then_some(()))
        })
        .await
    })
    .await?;
    let first = "sliding e2ee: first secret";
    step("alice sends", async { room.send(RoomMessageEventContent::text_plain(first)).await.context("send") }).await?;
    let bob_room = step("bob's room joined", bob.wait_room(&room_id, RoomState::Joined)).await?;
    let got = step("bob decrypts", bob.wait_decrypted(&bob_room, first)).await?;
    emit(
        json!({"event": "decrypted", "device": bob1.as_str(), "message": got, "room_encrypted": bob_room.latest_encryption_state().await.map(|s| s.is_encrypted()).unwrap_or(false)}),
    );

    // Bob's second device.
    let bob2s = step("bob's second device logs in", Session::start(hs, bob_user, bob_pw, "bob-2")).await?;
    let bob2 = bob2s.device_id()?;
    let seen_by_bob = step("bob's first device sees the second", bob.wait_device(&bob_id, &bob2, |_| true)).await?;
    let seen_by_alice = step("alice sees bob's second device", alice.wait_device(&bob_id, &bob2, |_| true)).await?;
    let bob1_by_alice = step("alice sees bob's first device", alice.wait_device(&bob_id, &bob1, |_| true)).await?;
    emit(json!({"event": "new_device", "by_bob": seen_by_bob, "by_alice": seen_by_alice, "first_device_by_alice": bob1_by_alice}));

    step("bob signs his second device", async {
        let d = bob.client.encryption().get_device(&bob_id, &bob2).await?.ok_or_else(|| anyhow!("device unknown"))?;
        d.verify().await.map_err(|e| anyhow!("verify: {e}"))
    })
    .await?;
    let verified_by_alice =
        step("alice sees bob's second device cross-signed", alice.wait_device(&bob_id, &bob2, |v| v["cross_signed_by_owner"] == true)).await?;
    let verified_by_bob = step("bob's first device sees it verified", bob.wait_device(&bob_id, &bob2, |v| v["verified"] == true)).await?;
    emit(json!({"event": "device_verified", "by_alice": verified_by_alice, "by_bob": verified_by_bob}));

    let second = "sliding e2ee: second secret";
    step("alice sends again", async { room.send(RoomMessageEventContent::text_plain(second)).await.context("send") }).await?;
    let bob2_room = step("the second device has the room", bob2s.wait_room(&room_id, RoomState::Joined)).await?;
    let got2 = step("the second device decrypts", bob2s.wait_decrypted(&bob2_room, second)).await?;
    let got1 = step("the first device decrypts", bob.wait_decrypted(&bob_room, second)).await?;
    emit(json!({"event": "decrypted_again", "device": bob2.as_str(), "message": got2, "first_device": got1}));
    for s in [&alice, &bob, &bob2s] {
        s.sync.stop().await;
    }
    Ok(())
}

async fn run(cmd: &str, args: &Args) -> Result<()> {
    match cmd {
        "room-list" => room_list(args).await,
        "accept-invite" => accept_invite(args).await,
        "e2ee" => e2ee(args).await,
        _ => bail!("unknown command {cmd}"),
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        emit(json!({"event": "error", "error": "usage: sliding_client <room-list|accept-invite|e2ee> --homeserver URL ..."}));
        std::process::exit(2);
    };
    let result = match Args::parse(rest) {
        Ok(args) => run(cmd, &args).await,
        Err(e) => Err(e),
    };
    let code = match result {
        Ok(()) => {
            emit(json!({"event": "done"}));
            0
        }
        Err(e) => {
            let step = STEP.lock().map(|s| s.clone()).unwrap_or_default();
            emit(json!({"event": "error", "step": step, "error": format!("{e:#}")}));
            1
        }
    };
    // Background tasks (sync loops) are not waited for.
    std::process::exit(code);
}
