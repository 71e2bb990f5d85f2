// Serves a Worker the way `wrangler dev` does — the same workerd, the same local D1, KV, R2
// and Durable Objects, persisted where `wrangler dev --persist-to DIR` keeps them (DIR/v3), the
// bindings read from the same wrangler configuration by wrangler's own
// `unstable_getMiniflareWorkerOptions` — but WITHOUT wrangler dev's proxy in front.
//
// `wrangler dev` runs two workerd processes: one holding its ProxyWorker (which buffers
// requests across reloads) and one holding the user's Worker; every request crosses both, over
// loopback HTTP. That costs ~3 ms a request on this machine (a do-nothing Worker answers in
// 2.7–3.2 ms p50 under `wrangler dev`, 0.3–0.4 ms here), and a deployed Worker has no such hop.
// The benchmarks use this to show what is Stratus's and what is the dev proxy's
// (bench/federation_latency.py --runtime direct; tests/integration/conftest.py
// STRATUS_RUNTIME=direct). Not for serving users: `make dev` stays on `wrangler dev`.
//
//   node bench/direct.mjs --config wrangler.json --ip 127.0.0.1 --port 8787 --persist-to DIR
//       [--https-key-path K --https-cert-path C] [--var NAME:VALUE ...]
//
// Unknown `wrangler dev` flags are ignored, so the harness can pass the same arguments.
// NODE_EXTRA_CA_CERTS is honoured by Miniflare for the Worker's outbound TLS, as under wrangler.

import fs from "node:fs";
import path from "node:path";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

function parse(argv) {
  const a = { vars: {} };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case "--config": a.config = v; i++; break;
      case "--ip": a.ip = v; i++; break;
      case "--port": a.port = Number(v); i++; break;
      case "--persist-to": a.persist = v; i++; break;
      case "--https-key-path": a.key = v; i++; break;
      case "--https-cert-path": a.cert = v; i++; break;
      case "--var": {
        const at = v.indexOf(":");
        a.vars[v.slice(0, at)] = v.slice(at + 1);
        i++;
        break;
      }
      default:
        // a wrangler-only flag; skip its value if it has one
        if (k.startsWith("--") && !k.includes("=") && v !== undefined && !v.startsWith("--")) i++;
    }
  }
  return a;
}

const a = parse(process.argv.slice(2));
const config = path.resolve(a.config ?? "wrangler.toml");
const { workerOptions, main } = unstable_getMiniflareWorkerOptions(config);
// `.dev.vars` beside the configuration (secrets), then --var, as wrangler dev layers them.
const bindings = { ...(workerOptions.bindings ?? {}), ...a.vars };
const { modulesRules: _rules, ...rest } = workerOptions;
const entry = path.resolve(path.dirname(config), main);
const root = path.dirname(entry);
const options = {
  host: a.ip ?? "127.0.0.1",
  port: a.port ?? 8787,
  ...(a.key ? { https: true, httpsKey: fs.readFileSync(a.key, "utf8"), httpsCert: fs.readFileSync(a.cert, "utf8") } : {}),
  ...(a.persist ? { resourcePersistencePath: path.join(path.resolve(a.persist), "v3") } : {}),
  log: new Log(LogLevel.INFO),
  logRequests: false, // the Worker logs each request itself (its JSON line)
  unsafeTriggerHandlers: true,
  workers: [
    {
      name: "stratus",
      ...rest,
      // The built Worker's modules, listed (as wrangler dev does after bundling): the entry
      // point and whatever sits beside it (the wasm it imports).
      modulesRoot: root,
      modules: [
        { type: "ESModule", path: entry },
        ...fs
          .readdirSync(root)
          .filter((f) => f.endsWith(".wasm"))
          .map((f) => ({ type: "CompiledWasm", path: path.join(root, f) })),
      ],
      bindings,
    },
  ],
};
const mf = new Miniflare(convertV4MiniflareOptions(options));
const url = await mf.ready;
console.log(`[direct] Ready on ${url.href}`);
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
