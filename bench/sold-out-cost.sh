#!/usr/bin/env bash
# The sold-out purchase's cost in two or more seckill builds, in alternating
# rounds: wrk requests/s and the server's CPU time per request (user +
# system from /proc, steadier than requests/s on a shared machine).
#
#   bench/sold-out-cost.sh OLD_BINARY NEW_BINARY [MORE...]
#   ROUNDS=5 DURATION=10s bench/sold-out-cost.sh ...
# Needs: wrk, jq, curl, bc.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
PORT=${PORT:-18390}
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
for tool in wrk jq curl bc; do
    command -v $tool >/dev/null || { echo "$tool is missing (apt-get install $tool)" >&2; exit 2; }
done

# one BINARY: serve, sell the only unit, then wrk the sold-out answer.
one() {
    local bin=$1 dir pid a admin sale token before after out reqs rps
    dir=$(mktemp -d)
    "$bin" serve --listen 127.0.0.1:$PORT --data-dir "$dir" >"$dir/log" 2>&1 &
    pid=$!
    trap "kill $pid 2>/dev/null || true" EXIT
    for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done
    a=http://127.0.0.1:$PORT
    admin="Authorization: Bearer $(cat "$dir/admin_token")"
    sale=$(curl -s -X POST $a/api/v1/sales -H "$admin" -d '{"name":"cost","stock":1,"price_cents":1}' | jq -r .id)
    token=$("$bin" token buyer --data-dir "$dir")
    curl -s -o /dev/null -X POST $a/api/v1/sales/$sale/purchase -H "Authorization: Bearer $token"
    echo 'wrk.method = "POST"' >"$dir/post.lua"
    before=$(awk '{print $14 + $15}' /proc/$pid/stat)
    out=$(wrk -t1 -c50 -d"$DURATION" -s "$dir/post.lua" $a/api/v1/sales/$sale/purchase)
    after=$(awk '{print $14 + $15}' /proc/$pid/stat)
    kill $pid; wait $pid 2>/dev/null || true
    rm -rf "$dir"
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    printf '%10.0f req/s %7.2f CPU us/req' "$rps" \
        "$(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l)"
}

for round in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        echo "round $round  $(one "$bin")  $bin"
    done
done
