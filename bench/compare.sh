#!/usr/bin/env bash
# seckill against its peers in $PEERS (the hyper ceiling server in
# ceiling-rust/, a Go peer in peer-go/), driven by the same
# generator (`seckill bench`) in one run, quoted as ratios to the hyper
# ceiling server (the machine is shared and noisy: compare within a run).
#
# Rows:
#   generator   wrk and `seckill bench --scenario get` against the ceiling
#               server: the generator must not be the bottleneck (>= 0.8x wrk)
#   ceiling     GET /buy/ticket on ceiling-rust (hyper), fixed body: the
#               denominator; measured first and last, the ratio uses the mean
#   sold_out    the sold-out purchase path: seckill on a sold-out sale; the
#               Go peer with its local stock spent (answers from memory)
#   in_stock    every request a purchase that succeeds: seckill reserves
#               durably (SQLite, fsync before 202); the Go peer deducts
#               locally then in Redis (nothing durable)
#   rush        1,000,000 distinct users against 10,000 tickets, each trying
#               once; seckill verifies afterwards that exactly 10,000 sold
#
#   bench/compare.sh
#   DURATION=20s CONNECTIONS=200 bench/compare.sh
# Needs: wrk, jq (apt-get install wrk jq); the Go peer needs go and redigo
# (apt-get install golang-go golang-github-gomodule-redigo-dev) and
# redis-server; without them its rows are skipped, and the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=${PEERS:-}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-100}
RUSH_USERS=${RUSH_USERS:-1000000}
RUSH_STOCK=${RUSH_STOCK:-10000}
CEILING_PORT=${CEILING_PORT:-18381}
SECKILL_PORT=${SECKILL_PORT:-18380}
PEER_PORT=${PEER_PORT:-18382}
REDIS_PORT=${REDIS_PORT:-18383}
OUT=$ROOT/bench/results/compare-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need wrk jq curl

build
PEER_GO=""
if command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/gomodule/redigo ] && command -v redis-server >/dev/null; then
    "$PEERS/peer-go/build.sh" >"$OUT/peer-go-build.log" 2>&1 && PEER_GO=$PEERS/peer-go/bin/peer-go
fi
[ -n "$PEER_GO" ] || echo "compare: the Go peer is skipped (needs go, golang-github-gomodule-redigo-dev and redis-server)"

ROWS=()
row() { ROWS+=("$1 $2 $3"); }   # row LABEL SERVER JSON

start_ceiling $CEILING_PORT
wait_port $CEILING_PORT

echo "generator: wrk vs seckill bench on the ceiling server..."
wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$CEILING_URL" >"$OUT/wrk.txt"
bench ceiling_first --scenario get --url "$CEILING_URL" --duration "$DURATION"
WRK_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$OUT/wrk.txt")

DATA=$(mktemp -d)
export SECKILL_JWT_SECRET=compare-secret SECKILL_ADMIN_TOKEN=compare-admin
start seckill env RUST_LOG=warn "$SECKILL" serve --listen 127.0.0.1:$SECKILL_PORT --data-dir "$DATA"
wait_port $SECKILL_PORT
SECKILL_URL=http://127.0.0.1:$SECKILL_PORT

echo "seckill: sold-out path, in-stock path, rush..."
SOLD_OUT=$(create_sale "$SECKILL_URL" 1)
bench seckill_warmup --url "$SECKILL_URL" --sale "$SOLD_OUT" --users 100 --requests 100
bench seckill_sold_out --url "$SECKILL_URL" --sale "$SOLD_OUT" --users "$RUSH_USERS" --duration "$DURATION"
row sold_out seckill seckill_sold_out
bench seckill_in_stock --url "$SECKILL_URL" --sale "$(create_sale "$SECKILL_URL" 1000000000)" --users "$RUSH_USERS" --duration "$DURATION"
row in_stock seckill seckill_in_stock
bench seckill_rush --url "$SECKILL_URL" --sale "$(create_sale "$SECKILL_URL" "$RUSH_STOCK")" --users "$RUSH_USERS"
row rush seckill seckill_rush
stop "$LAST_PID"
rm -rf "$DATA"

if [ -n "$PEER_GO" ]; then
    echo "Go peer: sold-out path, in-stock path, rush..."
    start redis redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no
    wait_port $REDIS_PORT
    # peer ROW LOCAL_STOCK REDIS_TOTAL ARGS...: a fresh Go peer per row.
    peer() {
        local name=$1 local_stock=$2 total=$3; shift 3
        redis-cli -p $REDIS_PORT hmset ticket_hash_key ticket_total_nums "$total" ticket_sold_nums 0 >/dev/null
        start "go_$name" env LOCAL_STOCK="$local_stock" REDIS_ADDR=127.0.0.1:$REDIS_PORT \
            LISTEN=127.0.0.1:$PEER_PORT STAT_LOG="$OUT/go_stat.log" "$PEER_GO"
        wait_port $PEER_PORT
        bench "go_$name" --scenario get --url "http://127.0.0.1:$PEER_PORT/buy/ticket" "$@"
        row "$name" go-peer "go_$name"
        stop "$LAST_PID"
    }
    peer sold_out 0 0 --duration "$DURATION"
    peer in_stock 1000000000 1000000000 --duration "$DURATION"
    peer rush "$RUSH_STOCK" "$RUSH_STOCK" --requests "$RUSH_USERS"
    GO_RUSH_SOLD=$(redis-cli -p $REDIS_PORT hget ticket_hash_key ticket_sold_nums)
fi

bench ceiling_last --scenario get --url "$CEILING_URL" --duration "$DURATION"

rps() { jq -r '.rps' "$OUT/$1.json"; }
# wrk's 99% latency line (e.g. "99%  3.55ms", "850.00us", "1.02s") in ms.
wrk_p99_ms() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v) }' "$1"
}
CEILING_RPS=$(echo "$(rps ceiling_first) $(rps ceiling_last)" | awk '{ printf "%.0f", ($1 + $2) / 2 }')
{
    echo "# $(date -u +%FT%TZ), $DURATION per timed row, $CONNECTIONS connections, one generator thread"
    printf "%-10s %-9s %10s %9s %9s  %s\n" row server req/s p99_ms x_ceiling checks
    printf "%-10s %-9s %10.0f %9.2f %9.2f  %s\n" generator wrk "$WRK_RPS" "$(wrk_p99_ms "$OUT/wrk.txt")" \
        "$(echo "$WRK_RPS $CEILING_RPS" | awk '{ print $1 / $2 }')" "-"
    printf "%-10s %-9s %10.0f %9.2f %9.2f  %s\n" generator "seckill" "$(rps ceiling_first)" \
        "$(jq .latency_ms.p99 "$OUT/ceiling_first.json")" "$(echo "$(rps ceiling_first) $WRK_RPS" | awk '{ print $1 / $2 }')" \
        "(x_ceiling here = seckill bench / wrk, same server)"
    for line in "ceiling ceiling ceiling_first" "ceiling ceiling ceiling_last" "${ROWS[@]}"; do
        set -- $line
        printf "%-10s %-9s %10.0f %9.2f %9.2f  %s\n" "$1" "$2" "$(rps "$3")" "$(jq .latency_ms.p99 "$OUT/$3.json")" \
            "$(echo "$(rps "$3") $CEILING_RPS" | awk '{ print $1 / $2 }')" \
            "$(jq -r 'if .invariants.ok then "hold" else "FAILED: " + (.invariants.failed | join("; ")) end' "$OUT/$3.json")"
    done
    if [ -n "$PEER_GO" ]; then
        echo "go-peer rush: Redis counts $GO_RUSH_SOLD of $RUSH_STOCK tickets sold (it has no report to check more)"
    else
        echo "(Go peer skipped: go or redigo or redis-server missing)"
    fi
} | tee "$OUT/table.txt"
echo "raw output in $OUT"
