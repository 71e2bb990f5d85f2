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
worker-build --release
# The wasm names section (function names in stack traces) is ~270 KB of the gzipped bundle
# (issue #17's budget); keep it with STRATUS_KEEP_WASM_NAMES=1 when debugging a panic.
if [ "${STRATUS_KEEP_WASM_NAMES:-}" != "1" ]; then
    node scripts/strip-wasm-names.mjs build/index_bg.wasm
fi
