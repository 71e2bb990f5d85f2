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
# Reproducible builds (`make repro`): the wasm keeps the source path of every panic location,
# absolute for dependencies ($CARGO_HOME/registry/src/...) and for code generated into the
# target directory; mapping these two to fixed names makes the bytes independent of where
# they are. Our own crate's paths are relative (src/...). Cargo keeps --remap-path-prefix
# out of -C metadata, so symbol names do not change; the flags are the same for every
# checkout sharing a target directory, so `make repro REPRO_TARGET=...` reuses its
# dependencies. (Paths with spaces are not supported here.)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$PWD/$TARGET_DIR ;; esac
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$TARGET_DIR=/target"
export RUSTFLAGS
worker-build --release
# The wasm names section (function names in stack traces) is ~270 KB of the gzipped bundle
# (issue #17's budget); keep it with STRATUS_KEEP_WASM_NAMES=1 when debugging a panic.
if [ "${STRATUS_KEEP_WASM_NAMES:-}" != "1" ]; then
    node scripts/strip-wasm-names.mjs build/index_bg.wasm
fi
sh scripts/provenance.sh > build/provenance.json.tmp && mv build/provenance.json.tmp build/provenance.json
