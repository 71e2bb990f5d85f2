// Startup cost of the bundle (issue #17): compiling the wasm module and instantiating it, as
// a cold isolate does before its first request, in V8 (Node's, the engine workerd embeds).
//
//     node_modules/.bin/node bench/startup.mjs [build/index_bg.wasm ...] [--runs 7]
//
// Prints, per file: size, gzip -9 size, median compile ms and median instantiate ms. The
// imports are stubs (instantiation only links them; nothing is called), so this is the
// engine's work on our bytes, not the JS glue's.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const args = process.argv.slice(2);
let runs = 7;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--runs") runs = Number(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) files.push("build/index_bg.wasm");

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const file of files) {
  const bytes = readFileSync(file);
  const gz = gzipSync(bytes, { level: 9 }).length;
  const compile = [];
  const inst = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const mod = await WebAssembly.compile(bytes);
    const t1 = performance.now();
    const imports = {};
    for (const imp of WebAssembly.Module.imports(mod)) {
      imports[imp.module] ??= {};
      if (imp.kind === "function") imports[imp.module][imp.name] = () => {};
      else if (imp.kind === "table") imports[imp.module][imp.name] = new WebAssembly.Table({ initial: 0, element: "anyfunc" });
      else if (imp.kind === "memory") imports[imp.module][imp.name] = new WebAssembly.Memory({ initial: 17 });
      else if (imp.kind === "tag") imports[imp.module][imp.name] = new WebAssembly.Tag({ parameters: ["externref"] });
      else if (imp.kind === "global") imports[imp.module][imp.name] = new WebAssembly.Global({ value: "i32", mutable: true }, 0);
    }
    const t2 = performance.now();
    await WebAssembly.instantiate(mod, imports);
    const t3 = performance.now();
    compile.push(t1 - t0);
    inst.push(t3 - t2);
  }
  console.log(
    `${file}: ${(bytes.length / 1e6).toFixed(2)} MB, ${(gz / 1e6).toFixed(2)} MB gzipped; ` +
      `compile ${median(compile).toFixed(1)} ms, instantiate ${median(inst).toFixed(1)} ms (median of ${runs})`,
  );
}
