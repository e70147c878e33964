#!/usr/bin/env bash
# Two seckill builds side by side, every row quoted as a ratio to the hyper
# ceiling server ($PEERS/ceiling-rust) in the same run: what a change costs.
# Both builds serve at once; the rows run in ROUNDS interleaved rounds
# (bench/lib.sh), each against the ceilings measured either side of it.
#
#   sold_out  POST purchase on a sold-out sale (no Idempotency-Key)
#   sale      GET /api/v1/sales/{id}, from memory with its ETag
#   listing   GET /api/v1/sales
#   stock     GET /api/v1/sales/{id}/stock
#   in_stock  every purchase succeeds, durably (SQLite, fsync before 202)
#   rush      RUSH_USERS distinct users, each trying once, for RUSH_STOCK
#             units of a fresh sale; the invariants are checked after
#
#   bench/builds.sh OLD_BINARY [NEW_BINARY]   (NEW: this tree, release)
#   KINDS="sold_out stock" ROUNDS=9 DURATION=3s bench/builds.sh OLD_BINARY
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
KINDS=${KINDS:-sold_out sale listing stock in_stock rush}
RUSH_USERS=${RUSH_USERS:-1000000}
RUSH_STOCK=${RUSH_STOCK:-10000}
OUT=$ROOT/bench/results/builds-$(date +%Y%m%d-%H%M%S)
[ $# -ge 1 ] || { echo "usage: $0 OLD_BINARY [NEW_BINARY]" >&2; exit 2; }
OLD=$(realpath "$1")
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need jq curl

build
NEW=$(realpath "${2:-$SECKILL}")
start_ceiling $CEILING_PORT
export SECKILL_JWT_SECRET=builds-secret SECKILL_ADMIN_TOKEN=builds-admin
declare -A SALE URL IN_STOCK
for build in old new; do
    port=OLD_PORT bin=$OLD
    [ $build = new ] && port=NEW_PORT bin=$NEW
    start "seckill_$build" env RUST_LOG=warn "$bin" serve --listen "127.0.0.1:${!port}" --data-dir "$(mktemp -d)"
    wait_port "${!port}"
    URL[$build]=http://127.0.0.1:${!port}
    SALE[$build]=$(create_sale "${URL[$build]}" 1)
    IN_STOCK[$build]=$(create_sale "${URL[$build]}" 1000000000)
    bench "warmup_$build" --url "${URL[$build]}" --sale "${SALE[$build]}" --users 100 --requests 100
done
wait_port $CEILING_PORT

ROWS=$(for kind in $KINDS; do echo "old_$kind new_$kind"; done)
measure() {
    local build=${1%%_*} kind=${1#*_}
    local url=${URL[$build]} sale=${SALE[$build]}
    case $kind in
        sold_out) bench "$2" --url "$url" --sale "$sale" --users "$USERS" --duration "$DURATION" ;;
        sale) bench "$2" --scenario get --url "$url/api/v1/sales/$sale" --duration "$DURATION" ;;
        listing) bench "$2" --scenario get --url "$url/api/v1/sales" --duration "$DURATION" ;;
        stock) bench "$2" --scenario get --url "$url/api/v1/sales/$sale/stock" --duration "$DURATION" ;;
        in_stock) bench "$2" --url "$url" --sale "${IN_STOCK[$build]}" --users "$USERS" --duration "$DURATION" ;;
        rush) bench "$2" --url "$url" --sale "$(create_sale "$url" "$RUSH_STOCK")" --users "$RUSH_USERS" ;;
    esac
}
echo "old: $OLD" >"$OUT/builds.txt"
echo "new: $NEW" >>"$OUT/builds.txt"
interleave
ratio_table
echo "raw output in $OUT"
