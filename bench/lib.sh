# Shared by the bench scripts (sourced): background processes stopped on
# exit, waiting for a port, and one `seckill bench` run. The caller sets
# OUT (where logs and JSON go), and before `bench`, SECKILL and CONNECTIONS.

SCRIPT=${0##*/}
SCRIPT=${SCRIPT%.sh}

# need TOOL...: exits 2 naming the first one missing.
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$SCRIPT: $tool is missing (apt-get install $tool)" >&2; exit 2; }
    done
}

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# start NAME CMD...: in the background, bounded by an hour, log in $OUT/NAME.log.
start() {
    local name=$1; shift
    timeout 3600 "$@" >"$OUT/$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
wait_port() {
    for _ in $(seq 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$SCRIPT: port $1 did not open" >&2
    return 1
}

# bench NAME ARGS...: one `seckill bench` run, JSON in $OUT/NAME.json.
bench() {
    local name=$1; shift
    "$SECKILL" bench --connections "$CONNECTIONS" --json "$OUT/$name.json" "$@" >"$OUT/$name.txt" 2>&1 \
        || echo "$SCRIPT: $name: $(tail -1 "$OUT/$name.txt")" >&2
}

# build: the release seckill (SECKILL, where cargo puts it, unless SECKILL
# names a binary already) and the hyper ceiling server of $PEERS (a
# hello-world server kept outside this repository: PEERS names its
# directory), built into $CEILING_TARGET so that nothing is written under
# $PEERS (CEILING).
build() {
    [ -n "$PEERS" ] || { echo "$SCRIPT: set PEERS to the directory that holds ceiling-rust/" >&2; exit 2; }
    [ -d "$PEERS/ceiling-rust" ] || { echo "$SCRIPT: no ceiling server at $PEERS/ceiling-rust (set PEERS)" >&2; exit 2; }
    local ceiling_target=${CEILING_TARGET:-${TMPDIR:-/tmp}/seckill-ceiling-target}
    echo "building (release)..."
    if [ -z "${SECKILL:-}" ]; then
        cargo build --release --quiet -p seckill-cli
        SECKILL=${CARGO_TARGET_DIR:-$ROOT/target}/release/seckill
    fi
    CARGO_TARGET_DIR=$ceiling_target cargo build --release --quiet --manifest-path "$PEERS/ceiling-rust/Cargo.toml"
    CEILING=$ceiling_target/release/ceiling-rust
}

# start_ceiling PORT: the ceiling server (hyper) on PORT; sets CEILING_URL.
start_ceiling() {
    start ceiling "$CEILING" --stack hyper --port "$1"
    CEILING_URL=http://127.0.0.1:$1/buy/ticket
}

# create_sale URL STOCK: a sale of STOCK units on the engine at URL, made
# with $SECKILL_ADMIN_TOKEN; prints its id.
create_sale() {
    curl -sf -X POST -H "Authorization: Bearer $SECKILL_ADMIN_TOKEN" "$1/api/v1/sales" \
        -d "{\"name\":\"$SCRIPT\",\"stock\":$2,\"price_cents\":100}" | jq -r .id
}

# interleave: ROUNDS rounds; each measures every row of $ROWS by calling
# `measure ROW NAME` (NAME = ROW_ROUND), with the ceiling ($CEILING_URL)
# measured between every two rows. The machine is shared and noisy, its
# speed drifting over seconds: each row is quoted against the mean of the
# two ceilings either side of it ($OUT/order.txt).
interleave() {
    local round row ceilings=1
    bench ceiling_1 --scenario get --url "$CEILING_URL" --duration "$DURATION"
    for round in $(seq "$ROUNDS"); do
        echo "round $round of $ROUNDS..."
        for row in $ROWS; do
            measure "$row" "${row}_$round"
            ceilings=$((ceilings + 1))
            bench "ceiling_$ceilings" --scenario get --url "$CEILING_URL" --duration "$DURATION"
            echo "$round $row ${row}_$round ceiling_$((ceilings - 1)) ceiling_$ceilings" >>"$OUT/order.txt"
        done
    done
}

# ratio_table: every row of `interleave` and the median ratio of each row,
# into $OUT/table.txt.
ratio_table() {
    local round row name before after ceiling
    rps() { jq -r '.rps' "$OUT/$1.json"; }
    median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
    {
        echo "# $(date -u +%FT%TZ), $ROUNDS rounds, $DURATION per row, $CONNECTIONS connections"
        printf "%-6s %-13s %10s %9s %15s %9s  %s\n" round row req/s p99_ms ceiling_either x_ceiling statuses
        while read -r round row name before after; do
            ceiling=$(echo "$(rps "$before") $(rps "$after")" | awk '{ print ($1 + $2) / 2 }')
            printf "%-6s %-13s %10.0f %9.2f %7.0f %7.0f %9.2f  %s\n" "$round" "$row" "$(rps "$name")" \
                "$(jq .latency_ms.p99 "$OUT/$name.json")" "$(rps "$before")" "$(rps "$after")" \
                "$(echo "$(rps "$name") $ceiling" | awk '{ print $1 / $2 }')" "$(jq -c .status "$OUT/$name.json")"
            echo "$row $(echo "$(rps "$name") $ceiling" | awk '{ print $1 / $2 }')" >>"$OUT/ratios.txt"
        done <"$OUT/order.txt"
        echo "median x_ceiling over the rounds:"
        for row in $ROWS; do
            printf "  %-13s %.2f\n" "$row" "$(awk -v r="$row" '$1 == r { print $2 }' "$OUT/ratios.txt" | median)"
        done
    } | tee "$OUT/table.txt"
}
