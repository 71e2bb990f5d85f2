// matrix-js-sdk syncing with simplified sliding sync (MSC4186) as Element Web does: a
// `SlidingSync` handed to `startClient`, so `SlidingSyncSdk` turns its responses into the
// client's Room objects (with the to_device, e2ee, account_data, typing and receipts
// extensions, and the Rust crypto fed from them).
//
//   node sliding_js.mjs '{"homeserver": URL, "user": U, "password": P,
//                         "rooms": [room_id, ...], "top": room_id?, "body": text?}'
//   node sliding_js.mjs '{"mode": "e2ee", "homeserver": URL, "alice": U, "bob": U, "password": P}'
//
// Prints JSON lines on stdout, each with an "event". Room list: `rooms` once every room in
// "rooms" is known and joined (with what the client holds for each, and the list's count);
// with "top", `ready`, then `message` once the test's message with "body" arrives live in that
// room. E2EE: `decrypted` once Bob's device decrypts Alice's message in the encrypted room
// Alice created. Last `done` (exit 0) or `error` (exit 1, with the sliding sync exchanges so
// far). Every wait is bounded (45 s a step). Logs go to stderr (MATRIX_JS_LOG=debug for the
// SDK's); SLIDING_TRACE=FILE appends every sliding sync exchange, whole, to FILE.

import * as fs from "node:fs";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync, SlidingSyncEvent, MSC3575_STATE_KEY_ME, MSC3575_STATE_KEY_LAZY, MSC3575_WILDCARD } from "matrix-js-sdk/lib/sliding-sync.js";

const STEP_MS = 45_000;
const LIST = "room_list";

const LEVELS = ["trace", "debug", "info", "warn", "error"];
const minLevel = Math.max(0, LEVELS.indexOf(process.env.MATRIX_JS_LOG || "warn"));
for (const [name, level] of [["trace", 0], ["debug", 1], ["log", 2], ["info", 2], ["warn", 3], ["error", 4]]) {
    console[name] = (...args) => {
        if (level < minLevel) return;
        const text = args.map((a) => (typeof a === "string" ? a : a instanceof Error ? a.stack : safeJson(a))).join(" ");
        process.stderr.write(`${new Date().toISOString()} ${name}: ${text}\n`);
    };
}
logger.setLevel(LEVELS[minLevel]);

function safeJson(a) {
    try {
        return JSON.stringify(a);
    } catch {
        return String(a);
    }
}

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

// The sliding sync requests and responses (clipped), for the error report; with
// SLIDING_TRACE=FILE each one is also appended whole to FILE (with the SDK's lifecycle).
const exchanges = [];
function trace(obj) {
    if (process.env.SLIDING_TRACE) fs.appendFileSync(process.env.SLIDING_TRACE, JSON.stringify({ at: new Date().toISOString(), ...obj }) + "\n");
}
async function recordingFetch(input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const sent = new Date().toISOString();
    const res = await fetch(input, init);
    if (url.pathname.includes("simplified_msc3575")) {
        const request = init && typeof init.body === "string" ? init.body : null;
        // The copy is read on the side, never awaited here: a request the SDK aborts (a
        // subscription change resends) while its body streams in could leave the copy's read
        // unsettled, and the SDK's sync loop waiting on this function for ever.
        res.clone()
            .text()
            .catch((e) => `(unreadable: ${e})`)
            .then((response) => {
                exchanges.push({ query: url.search, status: res.status, request: request?.slice(0, 4000) ?? null, response: response.slice(0, 4000) });
                if (exchanges.length > 6) exchanges.splice(1, 1); // keep the first and the latest
                trace({ sent, query: url.search, status: res.status, request, response });
            });
    }
    return res;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let currentStep = "start";
async function waitFor(step, fn) {
    currentStep = step;
    const deadline = Date.now() + STEP_MS;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${STEP_MS / 1000}s`);
        await sleep(100);
    }
}

function describeRoom(client, room) {
    const events = room.getLiveTimeline().getEvents();
    const last = events[events.length - 1];
    return {
        room_id: room.roomId,
        name: room.name,
        membership: room.getMyMembership(),
        last_event: last ? { type: last.getType(), sender: last.getSender(), body: last.getContent()?.body ?? null } : null,
    };
}

// A logged-in device syncing through a SlidingSync, as Element Web sets it up.
async function startDevice(homeserver, user, password) {
    const tmp = sdk.createClient({ baseUrl: homeserver, fetchFn: recordingFetch });
    const login = await tmp.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: "js-sdk sliding sync",
    });
    const client = sdk.createClient({
        baseUrl: homeserver,
        userId: login.user_id,
        deviceId: login.device_id,
        accessToken: login.access_token,
        fetchFn: recordingFetch,
        timelineSupport: true,
    });
    await client.initRustCrypto({ useIndexedDB: false });

    // Element Web's shape: one room list (spaces apart) in a window of 20, the most recent
    // message of each room, the state the room list shows; opened rooms get everything.
    const required = [
        ["m.room.join_rules", ""],
        ["m.room.avatar", ""],
        ["m.room.tombstone", ""],
        ["m.room.encryption", ""],
        ["m.room.create", ""],
        ["m.room.name", ""],
        ["m.room.member", MSC3575_STATE_KEY_ME],
        ["m.room.member", MSC3575_STATE_KEY_LAZY],
    ];
    const lists = new Map([
        [LIST, { ranges: [[0, 19]], timeline_limit: 1, required_state: required, filters: { not_room_types: ["m.space"] } }],
    ]);
    const subscription = { timeline_limit: 50, required_state: [[MSC3575_WILDCARD, MSC3575_WILDCARD]] };
    const slidingSync = new SlidingSync(homeserver, lists, subscription, client, 20_000);

    if (process.env.SLIDING_TRACE) {
        slidingSync.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => trace({ user: login.user_id, lifecycle: state, pos: resp?.pos, error: err ? String(err) : null }));
    }
    const device = { client, slidingSync, userId: login.user_id, deviceId: login.device_id, live: [], syncError: null };
    client.on(sdk.ClientEvent.Sync, (s, _prev, data) => {
        if (s === "ERROR") device.syncError = String(data?.error ?? "sync error");
    });
    client.on(sdk.RoomEvent.Timeline, (ev, room, toStartOfTimeline) => {
        if (!toStartOfTimeline && room) device.live.push({ room_id: room.roomId, event: ev });
    });
    device.check = () => {
        if (device.syncError) throw new Error(`${device.userId}: sync failed: ${device.syncError}`);
    };
    // Opening a room in Element Web subscribes to it (all its state, more timeline).
    device.open = (roomId) => slidingSync.modifyRoomSubscriptions(new Set([...slidingSync.getRoomSubscriptions(), roomId]));
    await client.startClient({ slidingSync });
    return device;
}

function liveMessage(e) {
    const ev = e.event;
    return { room_id: e.room_id, type: ev.getType(), body: ev.getContent()?.body ?? null, sender: ev.getSender() };
}

// Lists the rooms, then waits for the test's live message.
async function roomList(args) {
    const expected = args.rooms ?? [];
    currentStep = "login";
    const d = await startDevice(args.homeserver, args.user, args.password);
    const { client, slidingSync } = d;
    await waitFor("rooms listed", () => {
        d.check();
        return expected.every((id) => client.getRoom(id)?.getMyMembership() === "join");
    });
    emit({
        event: "rooms",
        user_id: d.userId,
        count: slidingSync.getListData(LIST)?.joinedCount ?? null,
        rooms: client.getRooms().map((r) => describeRoom(client, r)),
    });

    if (args.top) {
        emit({ event: "ready" });
        const got = await waitFor("live message", () => {
            d.check();
            return d.live.map(liveMessage).find((e) => e.room_id === args.top && e.type === "m.room.message" && e.body === args.body);
        });
        const room = client.getRoom(args.top);
        emit({ event: "message", message: got, room: describeRoom(client, room), count: slidingSync.getListData(LIST)?.joinedCount ?? null });
    }
    client.stopClient();
}

// Alice and Bob, each on js-sdk with sliding sync: Alice creates an encrypted room and invites
// Bob, Bob joins from the invite in his list, Alice's message decrypts on Bob's side (the room
// key came as to-device through the to_device extension; Alice's client found Bob's device
// through /keys/query after the e2ee extension's device_lists).
async function e2ee(args) {
    currentStep = "login";
    const alice = await startDevice(args.homeserver, args.alice, args.password);
    const bob = await startDevice(args.homeserver, args.bob, args.password);
    currentStep = "create room";
    const { room_id: roomId } = await alice.client.createRoom({
        name: "js sliding e2ee",
        invite: [bob.userId],
        initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    alice.open(roomId);
    await waitFor("bob sees the invite", () => {
        bob.check();
        return bob.client.getRoom(roomId)?.getMyMembership() === "invite";
    });
    await bob.client.joinRoom(roomId);
    bob.open(roomId);
    await waitFor("alice sees bob joined", () => {
        alice.check();
        return alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === "join";
    });
    await waitFor("alice knows the room is encrypted", async () => {
        alice.check();
        return await alice.client.getCrypto().isEncryptionEnabledInRoom(roomId);
    });
    // Bob's device uploads its keys in the background of its start; a message sent before
    // Alice's client knows that device is not encrypted for it (as in any client). The
    // device reaches Alice through the e2ee extension's device_lists and /keys/query.
    await waitFor("alice knows bob's device", async () => {
        alice.check();
        const devices = await alice.client.getCrypto().getUserDeviceInfo([bob.userId], true);
        return devices.get(bob.userId)?.has(bob.deviceId);
    });
    const body = "js sliding e2ee: a secret";
    currentStep = "alice sends";
    await alice.client.sendTextMessage(roomId, body);
    const got = await waitFor("bob decrypts", async () => {
        bob.check();
        for (const e of bob.live.filter((e) => e.room_id === roomId)) {
            const ev = e.event;
            // Decrypted in place (the Rust crypto retries when the key arrives later).
            if (ev.getType() === "m.room.message" && ev.getContent()?.body === body) return ev;
        }
        return null;
    });
    emit({
        event: "decrypted",
        room_id: roomId,
        message: { sender: got.getSender(), body: got.getContent().body, wire_type: got.getWireType(), encrypted: got.isEncrypted() },
        alice: alice.userId,
        bob: bob.userId,
    });
    alice.client.stopClient();
    bob.client.stopClient();
}

async function main() {
    const args = JSON.parse(process.argv[2] ?? "{}");
    if (args.mode === "e2ee") await e2ee(args);
    else await roomList(args);
}

main().then(
    () => {
        emit({ event: "done" });
        process.exit(0);
    },
    (e) => {
        emit({ event: "error", step: currentStep, error: String(e?.stack ?? e), exchanges });
        process.exit(1);
    },
);
