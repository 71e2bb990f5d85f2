#!/bin/sh
# Verifies that a build is what its commit builds (README "Verifying a deploy"): rebuilds the
# commit in a clean clone with a fresh Cargo target directory and compares the SHA-256 of
# the wasm module and its JavaScript shim with the expected ones.
#
#   scripts/verify-deploy.sh https://your.server [--hash <wasm sha256>] [--repo <git url>]
#       The commit is the one the server reports (`server.version` of
#       /_matrix/federation/v1/version: `<version>+<commit>`). The expected wasm hash is
#       --hash (from a Workers Builds attestation or the deploy log), or, with
#       STRATUS_ADMIN_TOKEN set to a server admin's access token, the provenance record the
#       server was deployed with (GET /_stratus/admin/v1/provenance).
#   scripts/verify-deploy.sh --local
#       Rebuilds the commit of build/provenance.json and compares with build/ (`make repro`).
#
# --repo: where to clone the commit from (default: this checkout). KEEP=1 keeps the clone.
# STRATUS_REPRO_TARGET=<dir>: build with that Cargo target directory instead of a fresh one
# (e.g. this checkout's target/: minutes instead of a full build; it proves that our crate,
# wasm-bindgen, wasm-opt and esbuild give the same bytes in another place, trusting the
# dependencies' cached artifacts).
set -eu
cd "$(dirname "$0")/.."
HERE=$PWD
export PATH="$HERE/node_modules/.bin:$HOME/.cargo/bin:$PATH"

die() { echo "verify-deploy: $*" >&2; exit 2; }
json() { node -e '
  let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    let v = JSON.parse(s); for (const k of process.argv[1].split(".")) v = v == null ? v : v[k];
    console.log(v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  });' "$1"; }

URL="" HASH="" JS_HASH="" REPO="$HERE" LOCAL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --local) LOCAL=1 ;;
        --hash) HASH="${2:-}"; shift ;;
        --repo) REPO="${2:-}"; shift ;;
        http://*|https://*) URL="${1%/}" ;;
        *) die "unknown argument $1 (see the comment at the top of this script)" ;;
    esac
    shift
done

if [ "$LOCAL" = 1 ]; then
    [ -f build/provenance.json ] || die "no build/provenance.json: run make build"
    COMMIT=$(json commit < build/provenance.json)
    [ "$(json dirty < build/provenance.json)" = false ] || die "build/ was built from a dirty tree: commit, rebuild, then verify"
    HASH=$(json wasm_sha256 < build/provenance.json)
    JS_HASH=$(json js_sha256 < build/provenance.json)
elif [ -n "$URL" ]; then
    VERSION=$(curl -fsS "$URL/_matrix/federation/v1/version" | json server.version) || die "cannot read $URL/_matrix/federation/v1/version"
    case "$VERSION" in
        *+*.dirty) die "the server runs a build of a dirty tree ($VERSION): nothing to rebuild" ;;
        *+*) COMMIT=${VERSION#*+} ;;
        *) die "the server does not report its commit (server.version = $VERSION)" ;;
    esac
    if [ -z "$HASH" ] && [ -n "${STRATUS_ADMIN_TOKEN:-}" ]; then
        REC=$(curl -fsS -H "Authorization: Bearer $STRATUS_ADMIN_TOKEN" "$URL/_stratus/admin/v1/provenance") || die "cannot read the provenance record"
        [ "$(echo "$REC" | json build.commit)" = "$COMMIT" ] || die "the deployed provenance record is not of commit $COMMIT"
        HASH=$(echo "$REC" | json build.wasm_sha256)
        JS_HASH=$(echo "$REC" | json build.js_sha256)
    fi
    [ -n "$HASH" ] || die "no expected hash: pass --hash <wasm sha256> or set STRATUS_ADMIN_TOKEN"
else
    die "usage: $0 https://your.server [--hash H] [--repo URL] | --local"
fi
echo "$COMMIT" | grep -qx '[0-9a-f]\{40\}' || die "not a commit: $COMMIT"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/stratus-verify.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT
echo "verify-deploy: rebuilding $COMMIT in $TMP (a clean release build: minutes)"
git clone --quiet --no-checkout "$REPO" "$TMP/src"
git -C "$TMP/src" checkout --quiet "$COMMIT" || die "commit $COMMIT is not in $REPO (use --repo)"
# The same tools: this checkout's npm packages if the clone pins the same ones; install.sh
# installs the Rust ones pinned by Cargo.lock if missing.
if [ -d node_modules ] && cmp -s package-lock.json "$TMP/src/package-lock.json"; then
    ln -s "$HERE/node_modules" "$TMP/src/node_modules"
    # A fresh clone's package-lock.json is newer than any install: give it the installed
    # one's time, or install.sh would reinstall over the link (from the network).
    [ ! -f node_modules/.package-lock.json ] || touch -r node_modules/.package-lock.json "$TMP/src/package-lock.json"
fi
(cd "$TMP/src" && sh scripts/install.sh >/dev/null)
# The rebuild must be of the commit as it is: a tracked file changed here (npm rewriting
# package-lock.json once did) would make it a dirty build, with ".dirty" compiled in.
CHANGED=$(git -C "$TMP/src" status --porcelain --untracked-files=no)
[ -z "$CHANGED" ] || die "installing the tools changed tracked files of the clone ($CHANGED): the rebuild would be of a dirty tree"
(cd "$TMP/src" && CARGO_TARGET_DIR="${STRATUS_REPRO_TARGET:-$TMP/target}" STRATUS_SKIP_BUILD= sh scripts/build.sh >"$TMP/build.log" 2>&1) ||
    { tail -n 30 "$TMP/build.log" >&2; die "the build failed"; }

[ "$(json dirty < "$TMP/src/build/provenance.json")" = false ] || die "the rebuild was of a dirty tree (kept in $TMP)"
GOT=$(json wasm_sha256 < "$TMP/src/build/provenance.json")
GOT_JS=$(json js_sha256 < "$TMP/src/build/provenance.json")
echo "expected wasm sha256: $HASH"
echo "rebuilt  wasm sha256: $GOT"
[ -z "$JS_HASH" ] || { echo "expected js   sha256: $JS_HASH"; echo "rebuilt  js   sha256: $GOT_JS"; }
if [ "$GOT" = "$HASH" ] && { [ -z "$JS_HASH" ] || [ "$GOT_JS" = "$JS_HASH" ]; }; then
    echo "verify-deploy: OK: the build is commit $COMMIT"
else
    trap - EXIT
    echo "verify-deploy: MISMATCH (the rebuild is kept in $TMP)" >&2
    exit 1
fi
