// One Matrix device driven over stdin/stdout: matrix-js-sdk with its Rust crypto
// (@matrix-org/matrix-sdk-crypto-wasm), the stack Element Web uses.
//
// The tests start one process per device (node 22: node_modules/.bin/node) and talk
// JSON lines:
//   in:  {"id": 1, "cmd": "login", "base": "...", "user": "...", "password": "..."}
//   out: {"id": 1, "ok": true, "result": {...}}   or   {"id": 1, "ok": false, "error": "..."}
// Commands (every one takes an optional "timeout" in seconds, default 60):
//   login {base, user, password, device_id?}   password login, then Rust crypto (in memory)
//   start {}                                     startClient; waits for the first sync and key upload
//   whoami {}                                    user_id, device_id, own identity keys
//   create_room {invite?: [user_id], encrypted?: true, name?}   -> {room_id}
//   join {room_id}                               joins; waits until the room is synced as joined
//   wait_member {room_id, user_id, membership}   waits for a member's state in the synced room
//   wait_device {user_id, device_id}            waits until the crypto store knows that device
//   send {room_id, body}                         waits until the room is known encrypted, then
//                                                sends an m.room.message (m.text) -> {event_id}
//   wait_message {room_id, body}                 waits for a decrypted m.room.message with this
//                                                body -> {event_id, sender, wire_type, ...}
//   timeline {room_id}                           what the room's live timeline holds (debugging)
//   requests {}                                  the HTTP requests made so far ("METHOD path status")
//   stop {}                                      stopClient, answers, exits 0
// Log lines go to stderr. MATRIX_JS_LOG=debug (or info, warn) sets the SDK's log level.
// The process exits when stdin closes.

import readline from "node:readline";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

const DEFAULT_TIMEOUT_S = 60;
const tag = () => `[js ${state.userId ?? "-"}/${state.deviceId ?? "-"}]`;

function log(...args) {
    process.stderr.write(`${new Date().toISOString()} ${tag()} ${args.join(" ")}\n`);
}

// stdout carries the protocol only: the SDK's logging (console.*) goes to stderr, and below
// MATRIX_JS_LOG's level (default warn) not at all.
const LEVELS = ["trace", "debug", "info", "warn", "error"];
const minLevel = Math.max(0, LEVELS.indexOf(process.env.MATRIX_JS_LOG || "warn"));
for (const [name, level] of [["trace", 0], ["debug", 1], ["log", 2], ["info", 2], ["warn", 3], ["error", 4]]) {
    console[name] = (...args) => {
        if (level < minLevel) return;
        const text = args.map((a) => (typeof a === "string" ? a : a instanceof Error ? a.stack : safeJson(a))).join(" ");
        process.stderr.write(`${new Date().toISOString()} ${tag()} ${name}: ${text}\n`);
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

const state = {
    client: null,
    userId: null,
    deviceId: null,
    requests: [],
};

// Every HTTP request the SDK makes is recorded (method, path without query, status).
async function recordingFetch(input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init && init.method) || (input instanceof Request ? input.method : "GET");
    try {
        const res = await fetch(input, init);
        state.requests.push(`${method} ${url.pathname} ${res.status}`);
        return res;
    } catch (e) {
        state.requests.push(`${method} ${url.pathname} ERR ${e}`);
        throw e;
    }
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what, fn, deadline) {
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(100);
    }
}

function needClient() {
    if (!state.client) throw new Error("not logged in (send login first)");
    return state.client;
}

function describeEvent(ev) {
    return {
        event_id: ev.getId(),
        sender: ev.getSender(),
        type: ev.getType(),
        wire_type: ev.getWireType(),
        encrypted: ev.isEncrypted(),
        decryption_failure: ev.isDecryptionFailure(),
        body: ev.getContent()?.body ?? null,
        // The Curve25519 key of the device that created the Megolm session (from the
        // Olm-encrypted m.room_key that carried it).
        sender_curve25519: ev.isEncrypted() ? ev.getSenderKey() : null,
        // The wire content of an encrypted event (algorithm, sender_key, session_id, ...).
        wire_content: ev.isEncrypted() ? ev.getWireContent() : null,
    };
}

const commands = {
    async login({ base, user, password, device_id }) {
        if (state.client) throw new Error("already logged in");
        const tmp = sdk.createClient({ baseUrl: base, fetchFn: recordingFetch });
        const body = {
            identifier: { type: "m.id.user", user },
            password,
            initial_device_display_name: `js-sdk ${device_id ?? ""}`.trim(),
        };
        if (device_id) body.device_id = device_id;
        const res = await tmp.loginRequest({ type: "m.login.password", ...body });
        state.userId = res.user_id;
        state.deviceId = res.device_id;
        const client = sdk.createClient({
            baseUrl: base,
            userId: res.user_id,
            deviceId: res.device_id,
            accessToken: res.access_token,
            fetchFn: recordingFetch,
            timelineSupport: true,
        });
        // In-memory crypto store: no IndexedDB in Node.
        await client.initRustCrypto({ useIndexedDB: false });
        state.client = client;
        return { user_id: res.user_id, device_id: res.device_id };
    },

    async start(_args, deadline) {
        const client = needClient();
        const ready = new Promise((resolve, reject) => {
            const onSync = (s, _prev, data) => {
                if (s === "PREPARED" || s === "SYNCING") {
                    client.removeListener(sdk.ClientEvent.Sync, onSync);
                    resolve();
                } else if (s === "ERROR") {
                    log(`sync error: ${data?.error ?? "?"}`);
                }
            };
            client.on(sdk.ClientEvent.Sync, onSync);
        });
        await client.startClient({ initialSyncLimit: 50, lazyLoadMembers: true });
        await Promise.race([
            ready,
            waitFor("first sync", () => false, deadline),
        ]);
        // Ready once the device keys are on the server (Rust crypto uploads them after the
        // first sync); a server without /keys/upload fails here, with its answers.
        try {
            await waitFor("device keys uploaded", () => state.requests.some((r) => r.startsWith("POST /_matrix/client/v3/keys/upload 200")), deadline);
        } catch (e) {
            const uploads = state.requests.filter((r) => r.includes("/keys/upload"));
            throw new Error(`${e.message}; keys/upload answers: ${JSON.stringify(uploads.slice(-3))}`);
        }
        return { sync_state: client.getSyncState() };
    },

    async whoami() {
        const client = needClient();
        const keys = await client.getCrypto().getOwnDeviceKeys();
        return {
            user_id: state.userId,
            device_id: state.deviceId,
            ed25519: keys.ed25519,
            curve25519: keys.curve25519,
        };
    },

    async create_room({ invite = [], encrypted = true, name }) {
        const client = needClient();
        const opts = { invite, preset: sdk.Preset.PrivateChat, initial_state: [] };
        if (name) opts.name = name;
        if (encrypted) {
            opts.initial_state.push({
                type: "m.room.encryption",
                state_key: "",
                content: { algorithm: "m.megolm.v1.aes-sha2" },
            });
        }
        const { room_id } = await client.createRoom(opts);
        return { room_id };
    },

    async join({ room_id }, deadline) {
        const client = needClient();
        await client.joinRoom(room_id);
        await waitFor(`${room_id} synced as joined`, () => client.getRoom(room_id)?.getMyMembership() === "join", deadline);
        return { room_id };
    },

    async wait_member({ room_id, user_id, membership = "join" }, deadline) {
        const client = needClient();
        await waitFor(`${user_id} ${membership} in ${room_id}`, () => {
            const m = client.getRoom(room_id)?.getMember(user_id);
            return m && m.membership === membership;
        }, deadline);
        return {};
    },

    async wait_device({ user_id, device_id }, deadline) {
        const client = needClient();
        const dev = await waitFor(`device ${user_id}/${device_id} in the crypto store`, async () => {
            const map = await client.getCrypto().getUserDeviceInfo([user_id], true);
            return map.get(user_id)?.get(device_id);
        }, deadline);
        return { device_id: dev.deviceId, curve25519: dev.getIdentityKey(), ed25519: dev.getFingerprint() };
    },

    async send({ room_id, body }, deadline) {
        const client = needClient();
        // Never send in the clear: wait until the room's m.room.encryption is known.
        await waitFor(`${room_id} known as encrypted`, async () => client.getRoom(room_id) && (await client.getCrypto().isEncryptionEnabledInRoom(room_id)), deadline);
        const res = await client.sendMessage(room_id, { msgtype: "m.text", body });
        return { event_id: res.event_id };
    },

    async wait_message({ room_id, body }, deadline) {
        const client = needClient();
        const found = await waitFor(`decrypted message ${JSON.stringify(body)} in ${room_id}`, () => {
            const room = client.getRoom(room_id);
            if (!room) return null;
            for (const ev of room.getLiveTimeline().getEvents()) {
                if (ev.getType() === "m.room.message" && !ev.isDecryptionFailure() && ev.getContent()?.body === body) {
                    return ev;
                }
            }
            return null;
        }, deadline);
        return describeEvent(found);
    },

    async timeline({ room_id }) {
        const client = needClient();
        const room = client.getRoom(room_id);
        if (!room) return { events: null };
        return { events: room.getLiveTimeline().getEvents().map(describeEvent) };
    },

    async requests() {
        return { requests: state.requests };
    },

    async stop() {
        if (state.client) state.client.stopClient();
        setTimeout(() => process.exit(0), 50);
        return {};
    },
};

function reply(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

// Commands run one at a time, in order.
let queue = Promise.resolve();

async function handle(line) {
    let msg;
    try {
        msg = JSON.parse(line);
    } catch (e) {
        log(`bad JSON on stdin: ${line}`);
        reply({ id: null, ok: false, error: `bad JSON: ${e}` });
        return;
    }
    const { id = null, cmd, timeout = DEFAULT_TIMEOUT_S, ...args } = msg;
    const fn = commands[cmd];
    if (!fn) {
        reply({ id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` });
        return;
    }
    const deadline = Date.now() + timeout * 1000;
    let timer;
    const timedOut = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${cmd} timed out after ${timeout}s`)), timeout * 1000 + 1000);
    });
    try {
        const result = await Promise.race([fn(args, deadline), timedOut]);
        reply({ id, ok: true, result });
    } catch (e) {
        const detail = e && e.data ? ` ${JSON.stringify(e.data)}` : "";
        log(`${cmd} failed: ${e && e.stack ? e.stack : e}${detail}`);
        reply({ id, ok: false, error: `${e && e.message ? e.message : e}${detail}` });
    } finally {
        clearTimeout(timer);
    }
}

process.on("unhandledRejection", (e) => log(`unhandled rejection: ${e && e.stack ? e.stack : e}`));

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => handle(line));
});
rl.on("close", () => {
    queue.then(() => {
        if (state.client) state.client.stopClient();
        process.exit(0);
    });
});
