#!/usr/bin/env bash
# Cluster mode, measured: three `seckill serve` nodes on a Redis of their
# own and PostgreSQL (a schema of its own), nginx in front — the layout of
# docs/cluster.md — against the hyper ceiling server ($PEERS/ceiling-rust)
# and an embedded engine, in the same run:
#
#   ceiling            GET /buy/ticket on ceiling-rust: before and after
#   embedded_sold_out  the sold-out purchase answer of an embedded engine
#   node_sold_out      the same answer from one cluster node, directly
#   rush               a sale of STOCK units rushed through nginx by USERS
#                      distinct users: reservations per second, and Redis
#                      reserve calls per reservation (from the nodes' metrics)
#
# Ratios (x_ceiling) compare rows of this run only; the machine is shared.
#
#   bench/cluster.sh
#   DURATION=10s STOCK=100000 USERS=1000000 DURABILITY=aof bench/cluster.sh
# Needs: jq, curl, redis-server, psql, nginx; PostgreSQL at $DATABASE.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=${PEERS:-}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-100}
STOCK=${STOCK:-50000}
USERS=${USERS:-500000}
BUFFER=${BUFFER:-10}
# none: Redis without persistence; aof: appendfsync always and --redis-durability aof.
DURABILITY=${DURABILITY:-none}
DATABASE=${DATABASE:-postgres://postgres@127.0.0.1:5432/test}
BASE_PORT=${BASE_PORT:-18400}
OUT=$ROOT/bench/results/cluster-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

source "$ROOT/bench/lib.sh"
need jq curl redis-server psql nginx
build

CEILING_PORT=$BASE_PORT EMBEDDED_PORT=$((BASE_PORT + 1)) REDIS_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3)) NODE_PORTS="$((BASE_PORT + 4)) $((BASE_PORT + 5)) $((BASE_PORT + 6))"
export SECKILL_JWT_SECRET=cluster-bench-secret SECKILL_ADMIN_TOKEN=cluster-bench-admin
WORK=$(mktemp -d)
chmod 755 "$WORK"

start_ceiling "$CEILING_PORT"
start embedded env RUST_LOG=warn "$SECKILL" serve --listen "127.0.0.1:$EMBEDDED_PORT" --data-dir "$WORK/embedded"

mkdir -p "$WORK/redis"
redis_args=(--port "$REDIS_PORT" --bind 127.0.0.1 --save "" --dir "$WORK/redis")
node_args=()
if [ "$DURABILITY" = aof ]; then
    redis_args+=(--appendonly yes --appendfsync always)
    node_args+=(--redis-durability aof)
fi
start redis redis-server "${redis_args[@]}"
wait_port "$REDIS_PORT"

# A schema of the run's own: the nodes see no other sales.
SCHEMA=seckill_bench_$$
psql -q "$DATABASE" -c "CREATE SCHEMA $SCHEMA"
NODE_DATABASE="$DATABASE?options=-c%20search_path%3D$SCHEMA"
nodes=()
for port in $NODE_PORTS; do
    start "node_$port" env RUST_LOG=warn "$SECKILL" serve --listen "127.0.0.1:$port" \
        --data-dir "$WORK/node-$port" --redis "redis://127.0.0.1:$REDIS_PORT" \
        --database "$NODE_DATABASE" --buffer "$BUFFER" "${node_args[@]}"
    nodes+=(--node "127.0.0.1:$port")
done
mkdir -p "$WORK/nginx"
"$SECKILL" nginx-conf --listen "127.0.0.1:$NGINX_PORT" "${nodes[@]}" --strategy round_robin \
    --prefix "$WORK/nginx" --daemon off --out "$WORK/nginx/nginx.conf"
start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
for port in $CEILING_PORT $EMBEDDED_PORT $NGINX_PORT $NODE_PORTS; do wait_port "$port"; done
# A node listens before it has joined the cluster; ready once it has.
for port in $NODE_PORTS; do
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
done

FIRST_NODE=${NODE_PORTS%% *}
# Every node learns of a sale within a second.
known_everywhere() { # SALE
    for port in $NODE_PORTS; do
        until curl -sf "http://127.0.0.1:$port/api/v1/sales/$1" >/dev/null; do sleep 0.2; done
    done
}
EMBEDDED_SALE=$(create_sale "http://127.0.0.1:$EMBEDDED_PORT" 1)
SOLD_SALE=$(create_sale "http://127.0.0.1:$FIRST_NODE" 1)
RUSH_SALE=$(create_sale "http://127.0.0.1:$FIRST_NODE" "$STOCK")
known_everywhere "$SOLD_SALE"
known_everywhere "$RUSH_SALE"
bench warmup_embedded --url "http://127.0.0.1:$EMBEDDED_PORT" --sale "$EMBEDDED_SALE" --users 100 --requests 100
bench warmup_node --url "http://127.0.0.1:$FIRST_NODE" --sale "$SOLD_SALE" --users 100 --requests 100

echo "measuring..."
bench ceiling_1 --scenario get --url "$CEILING_URL" --duration "$DURATION"
bench embedded_sold_out --url "http://127.0.0.1:$EMBEDDED_PORT" --sale "$EMBEDDED_SALE" --users "$USERS" --duration "$DURATION"
bench node_sold_out --url "http://127.0.0.1:$FIRST_NODE" --sale "$SOLD_SALE" --users "$USERS" --duration "$DURATION"
bench rush --url "http://127.0.0.1:$NGINX_PORT" --sale "$RUSH_SALE" --users "$USERS" --duration "$DURATION"
bench ceiling_2 --scenario get --url "$CEILING_URL" --duration "$DURATION"

rps() { jq -r '.rps' "$OUT/$1.json"; }
reserve_calls() {
    local total=0 n
    for port in $NODE_PORTS; do
        n=$(curl -sf "http://127.0.0.1:$port/metrics" \
            | awk -v s="$RUSH_SALE" '$1 == "seckill_redis_calls_total{sale_id=\"" s "\",op=\"reserve\"}" { print $2 }')
        total=$((total + ${n:-0}))
    done
    echo "$total"
}
ceiling=$(echo "$(rps ceiling_1) $(rps ceiling_2)" | awk '{ print ($1 + $2) / 2 }')
reserved=$(jq -r '.status["202"] // 0' "$OUT/rush.json")
# Until the stock ran out, if it did within the run.
seconds=$(jq -r '.stock_lasted_s // .elapsed_s' "$OUT/rush.json")
calls=$(reserve_calls)
{
    echo "# $(date -u +%FT%TZ), $DURATION per row, $CONNECTIONS connections, 3 nodes, buffer $BUFFER, durability $DURABILITY"
    printf "%-18s %10s %9s %9s  %s\n" row req/s p99_ms x_ceiling statuses
    for row in ceiling_1 embedded_sold_out node_sold_out rush ceiling_2; do
        printf "%-18s %10.0f %9.2f %9.2f  %s\n" "$row" "$(rps "$row")" "$(jq .latency_ms.p99 "$OUT/$row.json")" \
            "$(echo "$(rps "$row") $ceiling" | awk '{ print $1 / $2 }')" "$(jq -c .status "$OUT/$row.json")"
    done
    echo "node_sold_out / embedded_sold_out: $(echo "$(rps node_sold_out) $(rps embedded_sold_out)" | awk '{ printf "%.2f", $1 / $2 }')"
    echo "rush through nginx: $reserved reservations in ${seconds}s = $(echo "$reserved $seconds" | awk '{ printf "%.0f", $1 / $2 }') reservations/s"
    echo "Redis reserve calls: $calls = $(echo "$calls $reserved" | awk '{ printf "%.3f", ($2 > 0 ? $1 / $2 : 0) }') per reservation"
} | tee "$OUT/table.txt"
cleanup
psql -q "$DATABASE" -c "DROP SCHEMA $SCHEMA CASCADE"
rm -rf "$WORK"
echo "raw output in $OUT"
