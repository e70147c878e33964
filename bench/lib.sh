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
