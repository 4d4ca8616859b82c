#!/bin/bash
# Every benchmark in one session, then the tables for RESULTS.md.
#   bench/run-all.sh            # criterion, HTTP, cold verify, scale, flood, issuance, start
#   PEERS=1 bench/run-all.sh    # also the peers (big installs; see peers.sh)
# Results: $WORK/results.txt (RESULT lines) and $WORK/report.md (tables). Takes about
# 25 min without the peers (SIZES="1000 10000 100000" makes the scale run quicker).
set -u
source "$(dirname "$0")/lib.sh"
: > "$OUT"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo ' (+ uncommitted changes)')"
  echo "machine: $(machine_line)"
  echo "load before the run: $(machine_load)% of both cores busy"
} | tee "$WORK/header.txt"
(cd "$REPO" && cargo build --release -q -p latchkey-cli && cargo bench -q -p latchkey-server --bench loadtool -- list)
(cd "$REPO" && cargo bench -p latchkey-server --bench verifier 2>&1 | tee "$WORK/criterion.txt" | grep -E '^[a-z_]+/|time:')
"$BENCH_DIR/http.sh"
"$BENCH_DIR/coldverify.sh"
"$BENCH_DIR/scale.sh"
"$BENCH_DIR/flood.sh"
"$BENCH_DIR/issuance.sh"
"$BENCH_DIR/startup.sh"
[ "${PEERS:-0}" = 1 ] && "$BENCH_DIR/peers.sh"
python3 "$BENCH_DIR/report.py" "$OUT" "$REPO/target/criterion" > "$WORK/report.md"
cat "$WORK/header.txt" "$WORK/report.md"
