#!/bin/sh
# Builds the release Worker into build/ with worker-build, using the tools installed by
# scripts/install.sh (worker-build cannot download its own here).
set -eu
if [ "${STRATUS_SKIP_BUILD:-}" = "1" ]; then exit 0; fi
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
# Provenance (README "Verifying a deploy"): the commit and dirty flag are compiled in
# (src/core/provenance.rs); build/provenance.json records them with the hashes.
STRATUS_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then STRATUS_DIRTY=1; else STRATUS_DIRTY=0; fi
export STRATUS_COMMIT STRATUS_DIRTY
worker-build --release
# The wasm names section (function names in stack traces) is ~270 KB of the gzipped bundle
# (issue #17's budget); keep it with STRATUS_KEEP_WASM_NAMES=1 when debugging a panic.
if [ "${STRATUS_KEEP_WASM_NAMES:-}" != "1" ]; then
    node scripts/strip-wasm-names.mjs build/index_bg.wasm
fi
sh scripts/provenance.sh > build/provenance.json.tmp && mv build/provenance.json.tmp build/provenance.json
