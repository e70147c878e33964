#!/usr/bin/env bash
# Purchase-path benchmark of the embedded engine against the hyper ceiling
# server of ../shared/bench, in one run, quoted as ratios (the machine is
# shared and noisy). Rows, back to back, each with `wrk -t1 -c$CONNECTIONS`:
#   ceiling      GET /buy/ticket on ceiling-rust (hyper): the denominator
#   sold_out     POST purchase on a sold-out sale, one bearer token
#   reserve      POST purchase on a sale with more stock than the crowd,
#                every request a distinct user: each 202 is a durable
#                (fsynced) reservation
#   ceiling      again; the ratio divides by the mean of both ceiling rows
# x_ceiling compares req/s; x_ceiling_cpu compares requests per CPU-second
# of the server process, which the other process on the machine (wrk takes
# about one of the two cores) disturbs less.
# Afterwards it checks from the report that the reserved units equal the
# 2xx answers and that nothing else was answered.
#
#   bench/run.sh                     # 10 s per row
#   DURATION=30s USERS=2000000 bench/run.sh
# Needs wrk and jq (apt-get install wrk jq) and the ceiling server's sources
# (CEILING_DIR, default ../shared/bench/ceiling-rust next to this project).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-100}
USERS=${USERS:-1000000}
CEILING_DIR=${CEILING_DIR:-$ROOT/../shared/bench/ceiling-rust}
SECKILL_PORT=${SECKILL_PORT:-18180}
CEILING_PORT=${CEILING_PORT:-18181}
OUT=$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

for tool in wrk jq curl; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done

echo "building (release)..."
cargo build --release --quiet -p seckill-cli
(cd "$CEILING_DIR" && cargo build --release --quiet)
SECKILL=$ROOT/target/release/seckill
CEILING=$CEILING_DIR/target/release/ceiling-rust

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

DATA=$(mktemp -d)
export SECKILL_JWT_SECRET=bench-secret SECKILL_ADMIN_TOKEN=bench-admin
RUST_LOG=warn timeout 3600 "$SECKILL" serve --listen 127.0.0.1:$SECKILL_PORT --data-dir "$DATA" >"$OUT/seckill.log" 2>&1 &
PIDS+=($!)
timeout 3600 "$CEILING" --stack hyper --port $CEILING_PORT >"$OUT/ceiling.log" 2>&1 &
PIDS+=($!)
wait_port $SECKILL_PORT
wait_port $CEILING_PORT
SECKILL_PID=$(pgrep -f "^$SECKILL serve --listen 127.0.0.1:$SECKILL_PORT")
CEILING_PID=$(pgrep -f "^$CEILING --stack hyper --port $CEILING_PORT")
URL=http://127.0.0.1:$SECKILL_PORT
ADMIN=(-H "Authorization: Bearer $SECKILL_ADMIN_TOKEN")

new_sale() {
    curl -sf -X POST "${ADMIN[@]}" "$URL/api/v1/sales" -d "{\"name\":\"bench\",\"stock\":$1,\"price_cents\":100}" | jq -r .id
}

echo "minting $USERS user tokens..."
"$SECKILL" token bench --count "$USERS" >"$OUT/tokens.txt"

SOLD_OUT_SALE=$(new_sale 1)
ONE_TOKEN=$("$SECKILL" token one-buyer)
curl -sf -X POST -H "Authorization: Bearer $ONE_TOKEN" "$URL/api/v1/sales/$SOLD_OUT_SALE/purchase" >/dev/null
RESERVE_SALE=$(new_sale 1000000000)

# cpu_ticks PID : user+system CPU ticks used so far by PID (all its threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# row NAME PID CMD... : run wrk against the server PID, keep its output,
# print "name rps p50 p99 non2xx errors server_cpu_seconds requests".
row() {
    local name=$1 pid=$2 before after; shift 2
    before=$(cpu_ticks "$pid")
    "$@" >"$OUT/$name.txt" 2>&1
    after=$(cpu_ticks "$pid")
    awk -v name="$name" -v cpu="$(( after - before ))" -v hz="$(getconf CLK_TCK)" '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return v + 0
        }
        /^Requests\/sec:/ { rps = $2 }
        / requests in / { requests = $1 }
        /^ +50% / { p50 = ms($2) }
        /^ +99% / { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); for (i = 1; i <= NF; i++) if ($i ~ /^(connect|read|write|timeout)$/) err += $(i + 1) }
        END { printf "%s %.0f %.2f %.2f %d %d %.2f %d\n", name, rps, p50, p99, non2xx, err, cpu / hz, requests }
    ' "$OUT/$name.txt" | tee -a "$OUT/rows.txt"
}

WRK=(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency)
echo "running rows ($DURATION each)..."
: >"$OUT/rows.txt"
row ceiling_first "$CEILING_PID" "${WRK[@]}" "http://127.0.0.1:$CEILING_PORT/buy/ticket" >/dev/null
SALE=$SOLD_OUT_SALE TOKEN=$ONE_TOKEN row sold_out "$SECKILL_PID" "${WRK[@]}" -s bench/purchase-one-user.lua "$URL" >/dev/null
SALE=$RESERVE_SALE TOKENS_FILE=$OUT/tokens.txt row reserve "$SECKILL_PID" "${WRK[@]}" -s bench/purchase-distinct-users.lua "$URL" >/dev/null
row ceiling_last "$CEILING_PID" "${WRK[@]}" "http://127.0.0.1:$CEILING_PORT/buy/ticket" >/dev/null

REPORT=$(curl -sf "${ADMIN[@]}" "$URL/api/v1/sales/$RESERVE_SALE/report")
echo "$REPORT" >"$OUT/report.json"

awk -v report="$REPORT" '
    {
        name[NR] = $1; rps[$1] = $2; p50[$1] = $3; p99[$1] = $4; non2xx[$1] = $5; err[$1] = $6
        cpu[$1] = $7; per_cpu[$1] = ($7 > 0) ? $8 / $7 : 0
    }
    END {
        ceiling = (rps["ceiling_first"] + rps["ceiling_last"]) / 2
        ceiling_cpu = (per_cpu["ceiling_first"] + per_cpu["ceiling_last"]) / 2
        printf "%-14s %9s %9s %8s %8s %8s %7s %9s %10s %13s\n", "row", "req/s", "x_ceiling", "p50_ms", "p99_ms", "non2xx", "errors", "srv_cpu_s", "req/cpu_s", "x_ceiling_cpu"
        for (i = 1; i <= NR; i++) {
            n = name[i]
            printf "%-14s %9d %9.2f %8.2f %8.2f %8d %7d %9.2f %10d %13.2f\n", n, rps[n], rps[n] / ceiling, p50[n], p99[n], non2xx[n], err[n], cpu[n], per_cpu[n], per_cpu[n] / ceiling_cpu
        }
        spread = rps["ceiling_first"] - rps["ceiling_last"]; if (spread < 0) spread = -spread
        printf "ceiling drift in this run: %.1f%%\n", 100 * spread / ceiling
    }' "$OUT/rows.txt" | tee "$OUT/summary.txt"

# Every 202 of the reserve row must be one durable unit, and every request
# a 202 (there are more users than requests, and more stock than users).
reserved=$(jq '.pending_payment + .paid' <<<"$REPORT")
requests=$(awk '/ requests in / { print $1 }' "$OUT/reserve.txt")
non2xx=$(awk '$1 == "reserve" { print $5 }' "$OUT/rows.txt")
echo "reserve row: $requests requests, $non2xx not 2xx, $reserved units reserved in the store" | tee -a "$OUT/summary.txt"
if [ "$non2xx" -ne 0 ] || [ "$reserved" -lt $((requests - non2xx)) ]; then
    echo "FAIL: reserved units do not match the 202 answers" | tee -a "$OUT/summary.txt"
    exit 1
fi
echo "raw output in $OUT"
