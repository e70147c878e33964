#!/usr/bin/env bash
# What rate limiting costs, quoted as ratios to the hyper ceiling server
# ($PEERS/ceiling-rust) in the same run, all driven by `seckill bench`:
#
#   ceiling        GET /buy/ticket on ceiling-rust (hyper): measured between
#                  every two rows; a row's ratio uses the mean of the two
#                  either side of it
#   sold_out       the sold-out purchase path, default settings
#   sold_out_lim   the same with every limit on (per user, per address,
#                  engine-wide; limits high enough to refuse nothing)
#   stock          GET /stock (answered from memory), not rate limited
#   stock_lim      GET /stock with the address and engine-wide limits on it:
#                  the price of two limiter checks on a request this cheap
#
# The rows run in ROUNDS interleaved rounds (bench/lib.sh, `interleave`);
# the table shows every round and the median ratio.
#
#   bench/rate_limit.sh
#   ROUNDS=5 DURATION=10s CONNECTIONS=200 bench/rate_limit.sh
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
LIMITED_PORT=${LIMITED_PORT:-18392}
OUT=$ROOT/bench/results/rate-limit-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need jq curl

build
start_ceiling $CEILING_PORT
export SECKILL_JWT_SECRET=rate-limit-secret SECKILL_ADMIN_TOKEN=rate-limit-admin
DEFAULT_DATA=$(mktemp -d)
LIMITED_DATA=$(mktemp -d)
start seckill env RUST_LOG=warn "$SECKILL" serve --listen 127.0.0.1:$SECKILL_PORT --data-dir "$DEFAULT_DATA"
start seckill_lim env RUST_LOG=warn "$SECKILL" serve --listen 127.0.0.1:$LIMITED_PORT --data-dir "$LIMITED_DATA" \
    --rate-limited-routes purchase,stock --user-rate 10 --user-burst 20 \
    --ip-rate 1000000000 --ip-burst 1000000000 --global-rate 1000000000 --trusted-proxy 10.0.0.0/8
for port in $CEILING_PORT $SECKILL_PORT $LIMITED_PORT; do wait_port $port; done
SALE=$(create_sale "http://127.0.0.1:$SECKILL_PORT" 1)
SALE_LIM=$(create_sale "http://127.0.0.1:$LIMITED_PORT" 1)
bench warmup --url "http://127.0.0.1:$SECKILL_PORT" --sale "$SALE" --users 100 --requests 100
bench warmup_lim --url "http://127.0.0.1:$LIMITED_PORT" --sale "$SALE_LIM" --users 100 --requests 100

ROWS="sold_out sold_out_lim stock stock_lim"
measure() {
    case $1 in
        sold_out) bench "$2" --url "http://127.0.0.1:$SECKILL_PORT" --sale "$SALE" --users "$USERS" --duration "$DURATION" ;;
        sold_out_lim) bench "$2" --url "http://127.0.0.1:$LIMITED_PORT" --sale "$SALE_LIM" --users "$USERS" --duration "$DURATION" ;;
        stock) bench "$2" --scenario get --url "http://127.0.0.1:$SECKILL_PORT/api/v1/sales/$SALE/stock" --duration "$DURATION" ;;
        stock_lim) bench "$2" --scenario get --url "http://127.0.0.1:$LIMITED_PORT/api/v1/sales/$SALE_LIM/stock" --duration "$DURATION" ;;
    esac
}
interleave
ratio_table
rm -rf "$DEFAULT_DATA" "$LIMITED_DATA"
echo "raw output in $OUT"
