#!/bin/sh
# Prints the provenance record of build/ as JSON (scripts/build.sh writes it to
# build/provenance.json): the commit and dirty flag the build was compiled with, the hashes
# of Cargo.lock and of the built files, and the toolchain. Two clean builds of one commit
# with this toolchain give the same hashes (`make repro`).
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
sha() { sha256sum "$1" | cut -d' ' -f1; }
ver() { "$@" 2>/dev/null | head -n1 | tr -d '"\\' || echo unknown; }
cat <<JSON
{
  "commit": "${STRATUS_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}",
  "dirty": $([ "${STRATUS_DIRTY:-0}" = 1 ] && echo true || echo false),
  "cargo_lock_sha256": "$(sha Cargo.lock)",
  "wasm_sha256": "$(sha build/index_bg.wasm)",
  "js_sha256": "$(sha build/index.js)",
  "rustc": "$(ver rustc --version)",
  "wasm_bindgen": "$(ver "${WASM_BINDGEN_BIN:-wasm-bindgen}" --version)",
  "worker_build": "$(ver worker-build --version)",
  "wasm_opt": "$(ver "${WASM_OPT_BIN:-wasm-opt}" --version)"
}
JSON
