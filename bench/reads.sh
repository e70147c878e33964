#!/usr/bin/env bash
# The cached reads, quoted as ratios to the hyper ceiling server
# ($PEERS/ceiling-rust) in the same run, all driven by `seckill bench`:
#
#   ceiling   GET /buy/ticket on ceiling-rust (hyper): measured between
#             every two rows; a row's ratio uses the mean of the two
#             either side of it
#   sale      GET /api/v1/sales/{id}: the item, from memory, with its ETag
#   listing   GET /api/v1/sales: every sale, serialized once per change
#   stock     GET /api/v1/sales/{id}/stock: the live stock
#   sold_out  the sold-out purchase, for comparison
#
# The rows run in ROUNDS interleaved rounds (bench/lib.sh, `interleave`);
# the table shows every round and the median ratio.
#
#   bench/reads.sh
#   ROUNDS=5 DURATION=10s CONNECTIONS=200 bench/reads.sh
#   ROWS="sale listing" ROUNDS=15 bench/reads.sh
# Needs: jq, curl; the ceiling server is built into $CEILING_TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=${PEERS:-}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-100}
USERS=${USERS:-1000000}
CEILING_PORT=${CEILING_PORT:-18391}
SECKILL_PORT=${SECKILL_PORT:-18390}
OUT=$ROOT/bench/results/reads-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need jq curl

build
start_ceiling $CEILING_PORT
export SECKILL_JWT_SECRET=reads-secret SECKILL_ADMIN_TOKEN=reads-admin
DATA=$(mktemp -d)
start seckill env RUST_LOG=warn "$SECKILL" serve --listen 127.0.0.1:$SECKILL_PORT --data-dir "$DATA"
for port in $CEILING_PORT $SECKILL_PORT; do wait_port $port; done
URL=http://127.0.0.1:$SECKILL_PORT
SALE=$(create_sale "$URL" 1)
bench warmup --url "$URL" --sale "$SALE" --users 100 --requests 100

ROWS=${ROWS:-sale listing stock sold_out}
measure() {
    case $1 in
        sale) bench "$2" --scenario get --url "$URL/api/v1/sales/$SALE" --duration "$DURATION" ;;
        listing) bench "$2" --scenario get --url "$URL/api/v1/sales" --duration "$DURATION" ;;
        stock) bench "$2" --scenario get --url "$URL/api/v1/sales/$SALE/stock" --duration "$DURATION" ;;
        sold_out) bench "$2" --url "$URL" --sale "$SALE" --users "$USERS" --duration "$DURATION" ;;
    esac
}
interleave
ratio_table
rm -rf "$DATA"
echo "raw output in $OUT"
