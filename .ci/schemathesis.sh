#!/usr/bin/env bash
# Contract fuzzing: schemathesis generates requests (valid and invalid) from
# the OpenAPI document a live `seckill serve` publishes, and checks every
# answer against that document (.ci/schemathesis.toml). Bounded: a few
# dozen examples per operation, well under three minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
VENV=target/schemathesis-venv

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  # A newer Python than the default where pyenv has one: Hypothesis can
  # trip over CPython gh-106905 ("AST constructor recursion depth
  # mismatch") in older ones.
  python=python3
  if command -v pyenv >/dev/null 2>&1; then
    newer=$(ls -d "$(pyenv root)"/versions/3.1[3-9]*/bin/python3 2>/dev/null | tail -n 1)
    python=${newer:-python3}
  fi
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p seckill-cli
seckill=${CARGO_TARGET_DIR:-target}/debug/seckill

work=$(mktemp -d)
server=
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_server EXIT

export SECKILL_JWT_SECRET="schemathesis-jwt-secret-$RANDOM$RANDOM$RANDOM"
export SECKILL_ADMIN_TOKEN="schemathesis-admin-token-$RANDOM$RANDOM$RANDOM"
RUST_LOG=warn "$seckill" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
  >"$work/stdout" 2>"$work/server.log" &
server=$!

addr=
for _ in $(seq 100); do
  addr=$(sed -n 's|^listening on http://||p' "$work/stdout")
  [ -n "$addr" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "seckill serve did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
base="http://$addr"

# A sale that is open, with stock to spare and a generous per-user limit.
sale=$(curl --silent --show-error --fail -X POST "$base/api/v1/sales" \
  -H "Authorization: Bearer $SECKILL_ADMIN_TOKEN" \
  -d '{"name": "schemathesis", "stock": 1000000, "price_cents": 100, "per_user_limit": 1000}')
export SCHEMATHESIS_SALE_ID
SCHEMATHESIS_SALE_ID=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$sale")
export SCHEMATHESIS_USER_JWT
SCHEMATHESIS_USER_JWT=$("$seckill" token schemathesis-user)
export SCHEMATHESIS_ADMIN_TOKEN="$SECKILL_ADMIN_TOKEN"

seed=${SCHEMATHESIS_SEED:-$RANDOM}
echo "schemathesis $SCHEMATHESIS_VERSION against $base, seed $seed"
config=$PWD/.ci/schemathesis.toml
schemathesis="$PWD/$VENV/bin/schemathesis"
schemathesis() {
  # From the temporary dir, where its caches and Hypothesis' database go.
  (cd "$work" && "$schemathesis" --config-file "$config" --no-color run \
    "$base/api/v1/openapi.json" --max-examples "$MAX_EXAMPLES" --seed "$seed" \
    --workers 2 --request-timeout 10 "$@")
}
# Switching the degrade level refuses other routes with 503 on purpose, so
# it runs apart, after everything else. The dashboard's event stream never
# ends by itself, so it is left out.
status=0
schemathesis --exclude-operation-id set_degrade_level --exclude-path /dashboard/events || status=$?
schemathesis --include-path /api/v1/admin/degrade --phases examples,coverage,fuzzing || status=$?

if ! kill -0 "$server" 2>/dev/null; then
  echo "seckill serve died during the run:" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "--- seckill serve log (tail) ---" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
