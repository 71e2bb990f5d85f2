#!/bin/sh
# Installs whatever the build, `make dev` and `make test` need and is missing. Idempotent:
# every step checks first. Only registry packages (crates.io, npm, PyPI) are used.
#   scripts/install.sh          build tools (Rust target, wasm-bindgen, worker-build, npm)
#   scripts/install.sh test     also the Python test environment in .venv, and the reference
#                               Synapse (tests/synapse-requirements.txt) in bench/.synapse-venv
set -eu
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "install: rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
WBG=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -qw "$WBG"; then
    echo "install: wasm-bindgen-cli $WBG"
    cargo install wasm-bindgen-cli --version "$WBG" --force
fi

# worker-build matches the worker crate.
WB=$(awk '/^name = "worker"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if ! worker-build --version 2>/dev/null | grep -qw "$WB"; then
    echo "install: worker-build $WB"
    cargo install worker-build --version "$WB" --force
fi

# wrangler, esbuild, binaryen (wasm-opt) and Node 22 for wrangler, from package-lock.json.
if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "install: npm packages"
    # `npm install` (not `ci`): it keeps the pinned versions and tolerates lockfiles written
    # without other platforms' optional packages.
    npm install --no-audit --no-fund
fi

if [ "${1:-}" = "test" ]; then
    if [ ! -x .venv/bin/python ]; then
        echo "install: python venv"
        python3 -m venv .venv
    fi
    if [ ! -f .venv/.installed ] || [ tests/requirements.txt -nt .venv/.installed ]; then
        echo "install: python test packages"
        .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
        touch .venv/.installed
    fi
    # Synapse in its own venv (its dependencies must not meet the test packages'); the
    # federation tests, the E2EE comparison and the benchmarks run it. Same marker as
    # bench/synapse_local.py.
    if [ ! -x bench/.synapse-venv/bin/python ]; then
        echo "install: synapse venv"
        python3 -m venv bench/.synapse-venv
    fi
    if [ ! -f bench/.synapse-venv/.installed ] || [ tests/synapse-requirements.txt -nt bench/.synapse-venv/.installed ]; then
        echo "install: $(grep -v '^#' tests/synapse-requirements.txt | tr '\n' ' ')"
        bench/.synapse-venv/bin/pip install --quiet --disable-pip-version-check -r tests/synapse-requirements.txt
        touch bench/.synapse-venv/.installed
    fi
    # The matrix-sdk client of the sliding sync tests (tests/integration/clients), its own
    # Cargo project built into tests/sliding_client/target: ~10 minutes cold on two cores, a
    # second when nothing changed (cargo rebuilds only what did).
    if [ ! -x tests/sliding_client/target/debug/sliding_client ]; then
        echo "install: sliding sync test client (tests/sliding_client, first build)"
    fi
    cargo build --locked --quiet --manifest-path tests/sliding_client/Cargo.toml --target-dir tests/sliding_client/target
fi
