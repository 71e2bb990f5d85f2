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
//   wait_message {room_id, body, retry?}         waits for a decrypted m.room.message with this
//                                                body -> {event_id, sender, wire_type, ...}; with
//                                                retry, undecryptable events are retried each second
//                                                (manual_retries: how many such retries were made)
//   timeline {room_id}                           what the room's live timeline holds (debugging)
//   requests {}                                  the HTTP requests made so far ("METHOD path status")
//   exchanges {path_contains?}                   recorded request/response bodies of the E2EE
//                                                identity endpoints (keys/device_signing,
//                                                keys/signatures, room_keys, dehydrated_device,
//                                                account_data, sendToDevice, keys/claim):
//                                                {method, path, query, status, request, response}
//   logout {}                                    stopClient + POST /logout (the process stays)
//   stop {}                                      stopClient, answers, exits 0
// Cross-signing, secret storage (4S), key backup, dehydrated devices (MSC3814):
//   bootstrap_cross_signing {setup_new?}         crypto.userHasCrossSigningKeys (fresh, as Element
//                                                does first), then crypto.bootstrapCrossSigning:
//                                                new keys (always with setup_new), or those in 4S.
//                                                keys/device_signing/upload is tried without auth,
//                                                then with m.login.password after a 401 ->
//                                                {had_keys, uia_attempts, ready, master,
//                                                self_signing, user_signing}
//   cross_signing_status {}                      -> {ready, status, master, self_signing, user_signing}
//   user_cross_signing_keys {user_id}            the public keys in the crypto store (no download)
//                                                -> {known, master, self_signing, user_signing}
//   device_verification {user_id, device_id}     crypto.getDeviceVerificationStatus ->
//                                                {known, cross_signing_verified, signed_by_owner, ...}
//   bootstrap_secret_storage {new_key_backup?}   a new default 4S key (createRecoveryKeyFromPassphrase)
//                                                holding the cross-signing keys (and, with
//                                                new_key_backup, a new backup's key) ->
//                                                {key_id, recovery_key, ready}
//   use_recovery_key {recovery_key}              a 4S key to answer getSecretStorageKey with
//   secret_storage_ready {}                      -> {ready}
//   reset_key_backup {}                          crypto.resetKeyBackup -> {version, algorithm, active}
//   backup_status {}                             -> {active_version, counts: {total, backed_up}}
//   load_backup_key_from_secret_storage {}       crypto.loadSessionBackupPrivateKeyFromSecretStorage
//   check_key_backup {}                          crypto.checkKeyBackupAndEnable -> {version, trusted,
//                                                matches_decryption_key, active_version}
//   get_backup_key {}                            crypto.getSessionBackupPrivateKey -> {key_b64, version}
//   store_backup_key {key_b64, version}          crypto.storeSessionBackupPrivateKey
//   restore_backup {}                            crypto.restoreKeyBackup -> {total, imported}
//   dehydration_supported {}                     crypto.isDehydrationSupported -> {supported}
//   start_dehydration {create_new_key?, rehydrate?}   crypto.startDehydration -> {events}: the
//                                                dehydration CryptoEvents fired meanwhile
//   crypto_events {}                             every dehydration/backup CryptoEvent so far
// Log lines go to stderr. MATRIX_JS_LOG=debug (or info, warn) sets the SDK's log level.
// The process exits when stdin closes.

import readline from "node:readline";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { CryptoEvent, CrossSigningKey, decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/index.js";

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
    accessToken: null,
    password: null,
    requests: [],
    // Bodies of the requests/responses on these paths, for the tests' checks and failure messages.
    exchanges: [],
    // Secret-storage keys: key ID -> private key (Uint8Array); candidates are keys whose ID is
    // not known yet (a recovery key given to a new device).
    ssssKeys: new Map(),
    ssssCandidates: [],
    cryptoEvents: [],
};

const RECORD_BODIES = [
    "/keys/device_signing/upload",
    "/keys/signatures/upload",
    "/room_keys/",
    "/dehydrated_device",
    "/account_data/",
    "/sendToDevice/",
    "/keys/claim",
];
const BODY_LIMIT = 20000;

function clip(text) {
    return typeof text === "string" && text.length > BODY_LIMIT ? text.slice(0, BODY_LIMIT) + "...(clipped)" : text;
}

// Every HTTP request the SDK makes is recorded (method, path without query, status).
async function recordingFetch(input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init && init.method) || (input instanceof Request ? input.method : "GET");
    try {
        const res = await fetch(input, init);
        state.requests.push(`${method} ${url.pathname} ${res.status}`);
        if (RECORD_BODIES.some((p) => url.pathname.includes(p))) {
            let response = null;
            try {
                response = clip(await res.clone().text());
            } catch (e) {
                response = `(unreadable: ${e})`;
            }
            const body = init && typeof init.body === "string" ? clip(init.body) : null;
            state.exchanges.push({ method, path: url.pathname, query: url.search, status: res.status, request: body, response });
        }
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

// cryptoCallbacks.getSecretStorageKey: the 4S key the SDK asks for, from the keys this device
// created (cacheSecretStorageKey) or was given (use_recovery_key, checked against the key info).
async function getSecretStorageKey({ keys }, name) {
    for (const keyId of Object.keys(keys)) {
        const known = state.ssssKeys.get(keyId);
        if (known) return [keyId, known];
    }
    for (const [keyId, info] of Object.entries(keys)) {
        for (const candidate of state.ssssCandidates) {
            if (await state.client.secretStorage.checkKey(candidate, info)) {
                state.ssssKeys.set(keyId, candidate);
                return [keyId, candidate];
            }
        }
    }
    log(`getSecretStorageKey(${name}): none of ${JSON.stringify(Object.keys(keys))} is known`);
    return null;
}

function cacheSecretStorageKey(keyId, _keyInfo, key) {
    state.ssssKeys.set(keyId, key);
}

function toBase64(bytes) {
    return Buffer.from(bytes).toString("base64");
}

// The UIA callback for keys/device_signing/upload: first without auth (MSC3967 lets a user's
// first cross-signing keys through), then m.login.password in the session the 401 started.
function passwordUia(counter) {
    return async (makeRequest) => {
        counter.attempts.push("no auth");
        try {
            return await makeRequest(null);
        } catch (e) {
            const data = e?.data ?? {};
            if (e?.httpStatus !== 401 || !data.flows) throw e;
            log(`device_signing/upload asked for UIA: ${safeJson(data)}`);
            counter.attempts.push("m.login.password");
            return await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: state.userId },
                password: state.password,
                session: data.session,
            });
        }
    };
}

async function crossSigningIds(crypto) {
    return {
        master: await crypto.getCrossSigningKeyId(CrossSigningKey.Master),
        self_signing: await crypto.getCrossSigningKeyId(CrossSigningKey.SelfSigning),
        user_signing: await crypto.getCrossSigningKeyId(CrossSigningKey.UserSigning),
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
        state.accessToken = res.access_token;
        state.password = password;
        const client = sdk.createClient({
            baseUrl: base,
            userId: res.user_id,
            deviceId: res.device_id,
            accessToken: res.access_token,
            fetchFn: recordingFetch,
            timelineSupport: true,
            cryptoCallbacks: { getSecretStorageKey, cacheSecretStorageKey },
        });
        // In-memory crypto store: no IndexedDB in Node.
        await client.initRustCrypto({ useIndexedDB: false });
        state.client = client;
        for (const ev of Object.values(CryptoEvent)) {
            if (String(ev).startsWith("dehydration.") || ev === CryptoEvent.KeyBackupSessionsRemaining || ev === CryptoEvent.KeyBackupFailed) {
                client.on(ev, (...args) => {
                    // The event's own arguments (counts, messages): the emitter appends objects.
                    state.cryptoEvents.push({ event: ev, args: args.filter((a) => a === null || typeof a !== "object") });
                });
            }
        }
        return { user_id: res.user_id, device_id: res.device_id, access_token: res.access_token };
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

    async wait_message({ room_id, body, retry = false }, deadline) {
        const client = needClient();
        let lastRetry = 0;
        let retries = 0;
        let found;
        try {
            found = await waitFor(`decrypted message ${JSON.stringify(body)} in ${room_id}`, () => {
                const room = client.getRoom(room_id);
                if (!room) return null;
                const events = room.getLiveTimeline().getEvents();
                for (const ev of events) {
                    if (ev.getType() === "m.room.message" && !ev.isDecryptionFailure() && ev.getContent()?.body === body) {
                        return ev;
                    }
                }
                if (retry && Date.now() - lastRetry > 1000) {
                    lastRetry = Date.now();
                    for (const ev of events) {
                        if (ev.isDecryptionFailure()) {
                            retries++;
                            void client.decryptEventIfNeeded(ev, { isRetry: true });
                        }
                    }
                }
                return null;
            }, deadline);
        } catch (e) {
            const room = client.getRoom(room_id);
            const failures = (room ? room.getLiveTimeline().getEvents() : [])
                .filter((ev) => ev.isDecryptionFailure())
                .map((ev) => `${ev.getId()} session ${ev.getWireContent()?.session_id}: ${ev.decryptionFailureReason}`);
            throw new Error(`${e.message}; undecryptable: ${JSON.stringify(failures)}`);
        }
        return { ...describeEvent(found), manual_retries: retries };
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

    async exchanges({ path_contains }) {
        const ex = path_contains ? state.exchanges.filter((e) => e.path.includes(path_contains)) : state.exchanges;
        return { exchanges: ex };
    },

    async bootstrap_cross_signing({ setup_new = false }) {
        const crypto = needClient().getCrypto();
        const counter = { attempts: [] };
        // As Element does first: an up-to-date view of the account's public cross-signing keys
        // (a /keys/query for our own user). Importing keys from 4S needs it.
        const hadKeys = await crypto.userHasCrossSigningKeys(state.userId, true);
        await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUia(counter), setupNewCrossSigning: setup_new });
        return {
            had_keys: hadKeys,
            uia_attempts: counter.attempts,
            ready: await crypto.isCrossSigningReady(),
            ...(await crossSigningIds(crypto)),
        };
    },

    async cross_signing_status() {
        const crypto = needClient().getCrypto();
        return {
            ready: await crypto.isCrossSigningReady(),
            status: await crypto.getCrossSigningStatus(),
            ...(await crossSigningIds(crypto)),
        };
    },

    async user_cross_signing_keys({ user_id }) {
        // What the crypto store holds (kept up to date through device_lists.changed), no download.
        const keys = await needClient().getCrypto().getUserCrossSigningKeys(user_id);
        const pub = (k) => (k ? Object.values(k.keys)[0] : null);
        if (!keys) return { known: false };
        return { known: true, master: pub(keys.master_key), self_signing: pub(keys.self_signing_key), user_signing: pub(keys.user_signing_key) };
    },

    async device_verification({ user_id, device_id }) {
        const crypto = needClient().getCrypto();
        // Refresh the user's keys first: the answer is about what the server has now.
        await crypto.getUserDeviceInfo([user_id], true);
        const s = await crypto.getDeviceVerificationStatus(user_id, device_id);
        if (!s) return { known: false };
        return {
            known: true,
            cross_signing_verified: s.crossSigningVerified,
            signed_by_owner: s.signedByOwner,
            locally_verified: s.localVerified,
            verified: s.isVerified(),
        };
    },

    async bootstrap_secret_storage({ new_key_backup = false }) {
        const client = needClient();
        const crypto = client.getCrypto();
        let created = null;
        await crypto.bootstrapSecretStorage({
            setupNewSecretStorage: true,
            setupNewKeyBackup: new_key_backup,
            createSecretStorageKey: async () => {
                created = await crypto.createRecoveryKeyFromPassphrase();
                return created;
            },
        });
        if (!created) throw new Error("bootstrapSecretStorage did not create a key");
        return {
            key_id: await client.secretStorage.getDefaultKeyId(),
            recovery_key: created.encodedPrivateKey,
            ready: await crypto.isSecretStorageReady(),
        };
    },

    async use_recovery_key({ recovery_key }) {
        state.ssssCandidates.push(decodeRecoveryKey(recovery_key));
        return {};
    },

    async secret_storage_ready() {
        return { ready: await needClient().getCrypto().isSecretStorageReady() };
    },

    async reset_key_backup() {
        const crypto = needClient().getCrypto();
        await crypto.resetKeyBackup();
        const info = await crypto.getKeyBackupInfo();
        return { version: info?.version ?? null, algorithm: info?.algorithm ?? null, active: await crypto.getActiveSessionBackupVersion() };
    },

    async backup_status() {
        const client = needClient();
        const crypto = client.getCrypto();
        // OlmMachine.roomKeyCounts: how many Megolm sessions the device holds, how many are backed up.
        const olm = crypto.olmMachine;
        const counts = olm ? await olm.roomKeyCounts() : null;
        return {
            active_version: await crypto.getActiveSessionBackupVersion(),
            counts: counts ? { total: counts.total, backed_up: counts.backedUp } : null,
        };
    },

    async load_backup_key_from_secret_storage() {
        const crypto = needClient().getCrypto();
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        return {};
    },

    async check_key_backup() {
        const crypto = needClient().getCrypto();
        const check = await crypto.checkKeyBackupAndEnable();
        return {
            version: check?.backupInfo?.version ?? null,
            trusted: check?.trustInfo?.trusted ?? null,
            matches_decryption_key: check?.trustInfo?.matchesDecryptionKey ?? null,
            active_version: await crypto.getActiveSessionBackupVersion(),
        };
    },

    async get_backup_key() {
        const crypto = needClient().getCrypto();
        const key = await crypto.getSessionBackupPrivateKey();
        if (!key) throw new Error("no backup decryption key on this device");
        return { key_b64: toBase64(key), version: await crypto.getActiveSessionBackupVersion() };
    },

    async store_backup_key({ key_b64, version }) {
        const crypto = needClient().getCrypto();
        await crypto.storeSessionBackupPrivateKey(new Uint8Array(Buffer.from(key_b64, "base64")), version);
        return {};
    },

    async restore_backup() {
        const crypto = needClient().getCrypto();
        const res = await crypto.restoreKeyBackup();
        return { total: res.total, imported: res.imported };
    },

    async dehydration_supported() {
        return { supported: await needClient().getCrypto().isDehydrationSupported() };
    },

    async start_dehydration({ create_new_key = false, rehydrate = true }) {
        const crypto = needClient().getCrypto();
        const from = state.cryptoEvents.length;
        await crypto.startDehydration({ createNewKey: create_new_key, rehydrate });
        return { events: state.cryptoEvents.slice(from) };
    },

    async crypto_events() {
        return { events: state.cryptoEvents };
    },

    async logout() {
        const client = needClient();
        await client.logout(true);
        return {};
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
