// Drops the `name` custom section from a wasm file (function names for stack traces; about
// 270 KB of the gzipped bundle). worker-build always keeps it (it passes wasm-opt
// --debuginfo), so scripts/build.sh runs this after it unless STRATUS_KEEP_WASM_NAMES=1.
import { readFileSync, writeFileSync } from "node:fs";

const path = process.argv[2];
const b = readFileSync(path);
const leb = (i) => {
  let r = 0, s = 0, x;
  do { x = b[i++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80);
  return [r, i];
};
const keep = [b.subarray(0, 8)];
let i = 8, dropped = 0;
while (i < b.length) {
  const start = i;
  const id = b[i++];
  const [size, body] = leb(i);
  const end = body + size;
  let name = "";
  if (id === 0) {
    const [len, at] = leb(body);
    name = b.subarray(at, at + len).toString();
  }
  if (id === 0 && name === "name") dropped += end - start;
  else keep.push(b.subarray(start, end));
  i = end;
}
writeFileSync(path, Buffer.concat(keep));
console.log(`${path}: dropped the name section (${dropped} bytes)`);
