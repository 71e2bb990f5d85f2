// The Worker's own CPU per request, from V8's sampling profiler over wrangler dev's inspector
// (bench/cpu.py --profile). workerd's process CPU also counts the local D1 (SQLite), KV, R2
// and the simulators' isolates; the profiler sees only the Worker's isolate: its JS, its wasm
// and the garbage collector, which is what Cloudflare bills as the Worker's CPU time.
//
//     node bench/isolate_cpu.mjs PORT     # then on stdin: "start" / "stop", one per line
//
// Each "stop" prints one JSON line: {"busy_ms", "idle_ms", "samples"}; busy is every sample
// but "(idle)" (JS, wasm, "(program)" native work on the isolate's behalf, "(garbage
// collector)"). Requires Node >= 22 (global WebSocket): run with node_modules/.bin/node.
// "start LABEL" names what follows; with ISOLATE_CPU_TOP=FILE set, the self time of each
// function per label (top 30) is written to FILE as JSON when stdin ends: with a build whose
// wasm keeps its names (STRATUS_KEEP_WASM_NAMES=1 sh scripts/build.sh) it says where the
// Worker's CPU goes.
import readline from "node:readline";

const port = process.argv[2];
if (!port) {
  console.error("usage: isolate_cpu.mjs INSPECTOR_PORT");
  process.exit(2);
}
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
// wrangler's inspector proxy lists the user Worker (the one whose code we run).
const target = targets.find((t) => t.webSocketDebuggerUrl) ?? null;
if (!target) {
  console.error(`no inspectable target on port ${port}: ${JSON.stringify(targets)}`);
  process.exit(1);
}
// The proxy wants a local Origin (it refuses pages of other sites), which Node does not send.
const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { Origin: "http://localhost" } });
ws.binaryType = "arraybuffer";
await new Promise((ok, fail) => {
  ws.onopen = ok;
  ws.onerror = fail;
});
let next = 1;
const waiting = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(typeof m.data === "string" ? m.data : new TextDecoder().decode(m.data));
  if (msg.id && waiting.has(msg.id)) {
    waiting.get(msg.id)(msg);
    waiting.delete(msg.id);
  }
};
function call(method, params = {}) {
  const id = next++;
  ws.send(JSON.stringify({ id, method, params }));
  return new Promise((ok) => waiting.set(id, ok));
}
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 50 });

const rl = readline.createInterface({ input: process.stdin });
const byLabel = new Map();
let label = "";
for await (const line of rl) {
  const [cmd, ...rest] = line.trim().split(" ");
  if (cmd === "start") {
    label = rest.join(" ");
    await call("Profiler.start");
    console.log("{}");
  } else if (cmd === "stop") {
    const r = await call("Profiler.stop");
    const p = r.result?.profile;
    if (!p) {
      console.log(JSON.stringify({ error: r.error ?? "no profile" }));
      continue;
    }
    const name = new Map(p.nodes.map((n) => [n.id, n.callFrame.functionName]));
    let busy = 0;
    let idle = 0;
    const self = byLabel.get(label) ?? new Map();
    byLabel.set(label, self);
    (p.samples ?? []).forEach((id, i) => {
      const dt = (p.timeDeltas?.[i] ?? 0) / 1000;
      self.set(name.get(id), (self.get(name.get(id)) ?? 0) + dt);
      if (name.get(id) === "(idle)") idle += dt;
      else busy += dt;
    });
    console.log(JSON.stringify({ busy_ms: busy, idle_ms: idle, samples: (p.samples ?? []).length }));
  }
}
if (process.env.ISOLATE_CPU_TOP) {
  const out = {};
  for (const [l, m] of byLabel) {
    out[l] = [...m].filter(([f]) => f !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, 30).map(([f, ms]) => [f, Math.round(ms * 10) / 10]);
  }
  (await import("node:fs")).writeFileSync(process.env.ISOLATE_CPU_TOP, JSON.stringify(out, null, 1));
}
ws.close();
process.exit(0);
