#!/usr/bin/env bash
# Instructions per request of one or more seckill builds, counted by
# callgrind: exact and repeatable whatever else the shared machine is doing,
# where requests/s swing by a tenth between rounds. It counts the server's
# own work only (not the kernel's), so a change to what a request does in
# the engine shows as it is.
#
# Each build serves a sale of one unit, sold; wrk then drives each route of
# $ROUTES for $DURATION under callgrind, counted from a zero after a warm-up:
#
#   sold_out  POST /api/v1/sales/{id}/purchase (the crowd's answer)
#   sale      GET /api/v1/sales/{id}
#   listing   GET /api/v1/sales
#   stock     GET /api/v1/sales/{id}/stock
#
#   bench/instructions.sh target/release/seckill
#   ROUTES="sold_out" bench/instructions.sh OLD_BINARY NEW_BINARY
# Needs: valgrind, wrk, jq, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUTES=${ROUTES:-sold_out sale listing stock}
DURATION=${DURATION:-8s}
PORT=${PORT:-18393}
OUT=$ROOT/bench/results/instructions-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

source "$ROOT/bench/lib.sh"
need valgrind callgrind_control wrk jq curl

# count BINARY ROUTE: prints the route's instructions per request.
count() {
    local bin=$1 route=$2 dir pid url method=GET admin sale token requests total
    dir=$(mktemp -d)
    RUST_LOG=warn valgrind --tool=callgrind \
        --callgrind-out-file="$dir/callgrind" "$bin" serve --listen 127.0.0.1:$PORT \
        --data-dir "$dir" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done
    url=http://127.0.0.1:$PORT
    admin="Authorization: Bearer $(cat "$dir/admin_token")"
    sale=$(curl -sf -X POST "$url/api/v1/sales" -H "$admin" \
        -d '{"name":"instructions","stock":1,"price_cents":1}' | jq -r .id)
    token=$("$bin" token buyer --data-dir "$dir")
    curl -sf -o /dev/null -X POST "$url/api/v1/sales/$sale/purchase" -H "Authorization: Bearer $token"
    case $route in
        sold_out) url=$url/api/v1/sales/$sale/purchase method=POST ;;
        sale) url=$url/api/v1/sales/$sale ;;
        listing) url=$url/api/v1/sales ;;
        stock) url=$url/api/v1/sales/$sale/stock ;;
        *) echo "$SCRIPT: no route $route" >&2; exit 2 ;;
    esac
    echo "wrk.method = \"$method\"" >"$dir/method.lua"
    wrk -t1 -c10 -d2s -s "$dir/method.lua" "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    requests=$(wrk -t1 -c10 -d"$DURATION" -s "$dir/method.lua" "$url" | awk '/requests in/ { print $1 }')
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    total=$(awk '/^totals:/ { print $2 }' "$dir/callgrind.1")
    cp "$dir/callgrind.1" "$OUT/callgrind.$route.$(basename "$bin").$$"
    rm -rf "$dir"
    echo $((total / requests))
}

n=0
{
    echo "# $(date -u +%FT%TZ), $DURATION per route, instructions per request (callgrind)"
    printf "%-10s" route
    for bin in "$@"; do printf " %12s" "build $((++n))"; done
    echo
    for route in $ROUTES; do
        printf "%-10s" "$route"
        for bin in "$@"; do printf " %12s" "$(count "$bin" "$route")"; done
        echo
    done
    n=0
    for bin in "$@"; do echo "build $((++n)): $bin"; done
} | tee "$OUT/table.txt"
