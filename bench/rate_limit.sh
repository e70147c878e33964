#!/usr/bin/env bash
# What rate limiting costs, quoted as ratios to the hyper ceiling server of
# ../shared/bench in the same run, all driven by `seckill bench`:
#
#   ceiling        GET /buy/ticket on ceiling-rust (hyper): measured before
#                  and after each round; a row's ratio uses the mean of the two
#   sold_out       the sold-out purchase path, default settings
#   sold_out_lim   the same with every limit on (per user, per address,
#                  engine-wide; limits high enough to refuse nothing)
#   stock          GET /stock (answered from memory), not rate limited
#   stock_lim      GET /stock with the address and engine-wide limits on it:
#                  the price of two limiter checks on a request this cheap
#
# The machine is shared and noisy: the rows run in ROUNDS interleaved
# rounds, each quoted against its own round's ceiling, and the table shows
# every round and the median ratio.
#
#   bench/rate_limit.sh
#   ROUNDS=5 DURATION=10s CONNECTIONS=200 bench/rate_limit.sh
# Needs: jq, curl; the ceiling server is built into $CEILING_TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=${PEERS:-$ROOT/../shared/bench}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-100}
USERS=${USERS:-1000000}
CEILING_PORT=${CEILING_PORT:-18391}
SECKILL_PORT=${SECKILL_PORT:-18390}
LIMITED_PORT=${LIMITED_PORT:-18392}
CEILING_TARGET=${CEILING_TARGET:-${TMPDIR:-/tmp}/seckill-ceiling-target}
OUT=$ROOT/bench/results/rate-limit-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need jq curl
[ -d "$PEERS/ceiling-rust" ] || { echo "rate_limit: no ceiling server at $PEERS/ceiling-rust (set PEERS)" >&2; exit 2; }


echo "building (release)..."
cargo build --release --quiet -p seckill-cli
CARGO_TARGET_DIR=$CEILING_TARGET cargo build --release --quiet --manifest-path "$PEERS/ceiling-rust/Cargo.toml"
SECKILL=$ROOT/target/release/seckill


start ceiling "$CEILING_TARGET/release/ceiling-rust" --stack hyper --port $CEILING_PORT
CEILING_URL=http://127.0.0.1:$CEILING_PORT/buy/ticket
export SECKILL_JWT_SECRET=rate-limit-secret SECKILL_ADMIN_TOKEN=rate-limit-admin
DEFAULT_DATA=$(mktemp -d)
LIMITED_DATA=$(mktemp -d)
start seckill env RUST_LOG=warn "$SECKILL" serve --listen 127.0.0.1:$SECKILL_PORT --data-dir "$DEFAULT_DATA"
start seckill_lim env RUST_LOG=warn "$SECKILL" serve --listen 127.0.0.1:$LIMITED_PORT --data-dir "$LIMITED_DATA" \
    --rate-limited-routes purchase,stock --user-rate 10 --user-burst 20 \
    --ip-rate 1000000000 --ip-burst 1000000000 --global-rate 1000000000 --trusted-proxy 10.0.0.0/8
for port in $CEILING_PORT $SECKILL_PORT $LIMITED_PORT; do wait_port $port; done
sold_out_sale() {
    curl -sf -X POST -H "Authorization: Bearer $SECKILL_ADMIN_TOKEN" "http://127.0.0.1:$1/api/v1/sales" \
        -d '{"name":"rate-limit","stock":1,"price_cents":100}' | jq -r .id
}
SALE=$(sold_out_sale $SECKILL_PORT)
SALE_LIM=$(sold_out_sale $LIMITED_PORT)
bench warmup --url "http://127.0.0.1:$SECKILL_PORT" --sale "$SALE" --users 100 --requests 100
bench warmup_lim --url "http://127.0.0.1:$LIMITED_PORT" --sale "$SALE_LIM" --users 100 --requests 100

ROWS="sold_out sold_out_lim stock stock_lim"
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS..."
    bench "ceiling_$round" --scenario get --url "$CEILING_URL" --duration "$DURATION"
    bench "sold_out_$round" --url "http://127.0.0.1:$SECKILL_PORT" --sale "$SALE" --users "$USERS" --duration "$DURATION"
    bench "sold_out_lim_$round" --url "http://127.0.0.1:$LIMITED_PORT" --sale "$SALE_LIM" --users "$USERS" --duration "$DURATION"
    bench "stock_$round" --scenario get --url "http://127.0.0.1:$SECKILL_PORT/api/v1/sales/$SALE/stock" --duration "$DURATION"
    bench "stock_lim_$round" --scenario get --url "http://127.0.0.1:$LIMITED_PORT/api/v1/sales/$SALE_LIM/stock" --duration "$DURATION"
done
bench "ceiling_$((ROUNDS + 1))" --scenario get --url "$CEILING_URL" --duration "$DURATION"

rps() { jq -r '.rps' "$OUT/$1.json"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
{
    echo "# $(date -u +%FT%TZ), $ROUNDS rounds, $DURATION per row, $CONNECTIONS connections"
    printf "%-6s %-13s %10s %9s %9s  %s\n" round row req/s p99_ms x_ceiling statuses
    for round in $(seq "$ROUNDS"); do
        ceiling=$(echo "$(rps "ceiling_$round") $(rps "ceiling_$((round + 1))")" | awk '{ print ($1 + $2) / 2 }')
        for row in ceiling $ROWS; do
            name=${row}_$round
            printf "%-6s %-13s %10.0f %9.2f %9.2f  %s\n" "$round" "$row" "$(rps "$name")" \
                "$(jq .latency_ms.p99 "$OUT/$name.json")" \
                "$(echo "$(rps "$name") $ceiling" | awk '{ print $1 / $2 }')" "$(jq -c .status "$OUT/$name.json")"
            echo "$row $(echo "$(rps "$name") $ceiling" | awk '{ print $1 / $2 }')" >>"$OUT/ratios.txt"
        done
    done
    printf "%-6s %-13s %10.0f\n" "$((ROUNDS + 1))" ceiling "$(rps "ceiling_$((ROUNDS + 1))")"
    echo "median x_ceiling over the rounds:"
    for row in $ROWS; do
        printf "  %-13s %.2f\n" "$row" "$(awk -v r="$row" '$1 == r { print $2 }' "$OUT/ratios.txt" | median)"
    done
} | tee "$OUT/table.txt"
rm -rf "$DEFAULT_DATA" "$LIMITED_DATA"
echo "raw output in $OUT"
