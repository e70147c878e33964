#!/usr/bin/env bash
# What collecting metrics costs the sold-out purchase. This source is built
# twice: as usual, and with `--cfg seckill_no_metrics` (requests and
# purchases not counted, so the dashboard's pulse and automatic degradation
# see nothing; a request's two clock reads stay). The two
# builds are compared in two ways:
#
#   instructions per request   bench/instructions.sh: exact, repeatable
#   req/s, CPU time per request  bench/sold-out-cost.sh: alternating rounds
#                              on the shared machine, noisy
#
#   bench/metrics-cost.sh
#   ROUNDS=5 DURATION=10s bench/metrics-cost.sh
# Needs: what those two scripts need.
set -euo pipefail
cd "$(dirname "$0")/.."
NO_METRICS_TARGET=${NO_METRICS_TARGET:-${TMPDIR:-/tmp}/seckill-no-metrics-target}

echo "building (release, with metrics and without)..."
cargo build --release --quiet -p seckill-cli
RUSTFLAGS="--cfg seckill_no_metrics" CARGO_TARGET_DIR=$NO_METRICS_TARGET \
    cargo build --release --quiet -p seckill-cli
WITHOUT=$NO_METRICS_TARGET/release/seckill
WITH=${CARGO_TARGET_DIR:-$PWD/target}/release/seckill

ROUTES=sold_out bench/instructions.sh "$WITHOUT" "$WITH"
echo "# alternating rounds: $WITHOUT (without metrics), then $WITH"
bench/sold-out-cost.sh "$WITHOUT" "$WITH"
