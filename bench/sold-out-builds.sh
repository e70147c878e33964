#!/usr/bin/env bash
# The sold-out purchase (no Idempotency-Key) of two seckill builds, quoted
# as ratios to the hyper ceiling server ($PEERS/ceiling-rust) in the same run:
# what a change costs the crowd's answer. Both builds serve a sold-out sale
# at once; the rows run in ROUNDS interleaved rounds (bench/lib.sh), each
# against the ceilings measured either side of it.
#
#   bench/sold-out-builds.sh OLD_BINARY [NEW_BINARY]   (NEW: this tree, release)
#   ROUNDS=9 DURATION=3s bench/sold-out-builds.sh OLD_BINARY
# Needs: jq, curl; the ceiling server is built into $CEILING_TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=${PEERS:-}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-100}
USERS=${USERS:-1000000}
CEILING_PORT=${CEILING_PORT:-18391}
OLD_PORT=${OLD_PORT:-18392}
NEW_PORT=${NEW_PORT:-18393}
OUT=$ROOT/bench/results/sold-out-builds-$(date +%Y%m%d-%H%M%S)
[ $# -ge 1 ] || { echo "usage: $0 OLD_BINARY [NEW_BINARY]" >&2; exit 2; }
OLD=$(realpath "$1")
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need jq curl

build
NEW=$(realpath "${2:-$SECKILL}")
start_ceiling $CEILING_PORT
export SECKILL_JWT_SECRET=builds-secret SECKILL_ADMIN_TOKEN=builds-admin
declare -A SALE URL
for build in old new; do
    port=OLD_PORT bin=$OLD
    [ $build = new ] && port=NEW_PORT bin=$NEW
    start "seckill_$build" env RUST_LOG=warn "$bin" serve --listen "127.0.0.1:${!port}" --data-dir "$(mktemp -d)"
    wait_port "${!port}"
    URL[$build]=http://127.0.0.1:${!port}
    SALE[$build]=$(create_sale "${URL[$build]}" 1)
    bench "warmup_$build" --url "${URL[$build]}" --sale "${SALE[$build]}" --users 100 --requests 100
done
wait_port $CEILING_PORT

ROWS="old new"
measure() { bench "$2" --url "${URL[$1]}" --sale "${SALE[$1]}" --users "$USERS" --duration "$DURATION"; }
echo "old: $OLD" >"$OUT/builds.txt"
echo "new: $NEW" >>"$OUT/builds.txt"
interleave
ratio_table
echo "raw output in $OUT"
