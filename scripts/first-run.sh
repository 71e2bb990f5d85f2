#!/bin/sh
# First deploy (README "Deploy"): creates the Cloudflare resources wrangler.toml names — the
# D1 database, the KV namespace, the R2 bucket (with a rule that aborts multipart uploads
# left incomplete for a day) — and writes the D1 and KV IDs into wrangler.toml. Run once,
# logged in (`wrangler login`). Safe to run again: resources that exist are looked up, IDs
# already written are kept. Then prints the secrets still to set.
#   WRANGLER=...        the wrangler to run (default node_modules/.bin/wrangler)
#   STRATUS_CONFIG=...  the configuration file to fill in (default wrangler.toml)
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
WRANGLER="${WRANGLER:-node_modules/.bin/wrangler}"
CONFIG="${STRATUS_CONFIG:-wrangler.toml}"
ZERO_D1=00000000-0000-0000-0000-000000000000
ZERO_KV=00000000000000000000000000000000
UUID='[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}'
HEX32='[0-9a-f]\{32\}'

field() { sed -n "s/^$1 *= *\"\\([^\"]*\\)\".*/\\1/p" "$CONFIG" | head -n1; }
DB_NAME=$(field database_name)
BUCKET=$(field bucket_name)
KV_TITLE="${KV_TITLE:-$(field name)}"
[ -n "$DB_NAME" ] && [ -n "$BUCKET" ] && [ -n "$KV_TITLE" ] || { echo "first-run: $CONFIG lacks database_name, bucket_name or name" >&2; exit 1; }

# An ID from `wrangler ... list --json` output: the `key` of the entry whose `match` is `want`.
from_list() { node -e '
  let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    const [key, match, want] = process.argv.slice(1);
    const a = JSON.parse(s.slice(s.indexOf("[")));
    const e = a.find(x => x[match] === want); if (e) console.log(e[key]);
  });' "$@"; }

# D1
if grep -q "database_id *= *\"$ZERO_D1\"" "$CONFIG"; then
    echo "first-run: creating D1 database $DB_NAME"
    out=$("$WRANGLER" d1 create "$DB_NAME" 2>&1) || echo "$out" | grep -qi "already exists" || { echo "$out" >&2; exit 1; }
    id=$(echo "$out" | grep -o "database_id[^0-9a-f]*$UUID" | grep -o "$UUID" | head -n1)
    [ -n "$id" ] || id=$("$WRANGLER" d1 list --json | from_list uuid name "$DB_NAME")
    [ -n "$id" ] || { echo "first-run: no ID for D1 database $DB_NAME:" >&2; echo "$out" >&2; exit 1; }
    sed -i.bak "s/database_id *= *\"$ZERO_D1\"/database_id = \"$id\"/" "$CONFIG" && rm -f "$CONFIG.bak"
    echo "first-run: D1 database_id = $id"
else
    echo "first-run: D1 database_id already set"
fi

# KV
if grep -q "^id *= *\"$ZERO_KV\"" "$CONFIG"; then
    echo "first-run: creating KV namespace $KV_TITLE"
    out=$("$WRANGLER" kv namespace create "$KV_TITLE" 2>&1) || echo "$out" | grep -qi "already exists" || { echo "$out" >&2; exit 1; }
    id=$(echo "$out" | grep -o "\"\\{0,1\\}id\"\\{0,1\\}[ :=]*\"$HEX32\"" | grep -o "$HEX32" | head -n1)
    [ -n "$id" ] || id=$("$WRANGLER" kv namespace list | from_list id title "$KV_TITLE")
    [ -n "$id" ] || { echo "first-run: no ID for KV namespace $KV_TITLE:" >&2; echo "$out" >&2; exit 1; }
    sed -i.bak "s/^id *= *\"$ZERO_KV\"/id = \"$id\"/" "$CONFIG" && rm -f "$CONFIG.bak"
    echo "first-run: KV id = $id"
else
    echo "first-run: KV id already set"
fi

# R2 (named, no ID). `tmp/` multipart uploads a request never finished are invisible to the
# Worker's list; R2 aborts them after a day with this rule (README "Scheduled clean-up").
echo "first-run: creating R2 bucket $BUCKET"
out=$("$WRANGLER" r2 bucket create "$BUCKET" 2>&1) || echo "$out" | grep -qi "already exists" || { echo "$out" >&2; exit 1; }
"$WRANGLER" r2 bucket lifecycle add "$BUCKET" abort-tmp-multipart tmp/ --abort-multipart-days 1 --force >/dev/null 2>&1 ||
    echo "first-run: could not add the R2 lifecycle rule; add it by hand: wrangler r2 bucket lifecycle add $BUCKET abort-tmp-multipart tmp/ --abort-multipart-days 1"

cat <<EOF
first-run: done. Next (README "Deploy"):
  1. set SERVER_NAME and PUBLIC_BASEURL in [vars] of $CONFIG;
  2. set the secrets (values: see scripts/dev-vars.sh for their formats):
       $WRANGLER secret put SIGNING_KEY                  # "ed25519 <key id> <unpadded base64 seed>"
       $WRANGLER secret put REGISTRATION_SHARED_SECRET   # random; for the admin registration API
       $WRANGLER secret put OAUTH_SIGNING_KEY            # optional: OAuth 2.0 (docs/oauth.md)
  3. make deploy
EOF
