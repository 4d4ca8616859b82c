#!/bin/bash
# Cache miss (cold verify) on SQLite: a fresh verifier over a bulk-loaded store checks
# SAMPLES distinct tokens, each one a miss that reads the store (`find_secret`) and builds
# a grant. Env: COLD_N (tokens in the store, 100000), SAMPLES (20000).
set -u
source "$(dirname "$0")/lib.sh"
n=${COLD_N:-100000}
DATA=$WORK/scale-$n
if [ ! -s "$DATA/tokens.txt" ] || [ "$(wc -l < "$DATA/tokens.txt")" -ne "$n" ]; then
  rm -rf "$DATA"; mkdir -p "$DATA"
  loadtool bulk-load "$DATA" "$n" "$DATA/tokens.txt" | tee -a "$OUT"
fi
wait_quiet
# Baseline of the same run, before and after: the same SELECT from Python's in-process
# sqlite3 on the same file (coldverify_baseline.py says what it leaves out).
python3 "$BENCH_DIR/coldverify_baseline.py" "$DATA/latchkey.db" "${SAMPLES:-20000}" | sed 's/$/ round=before/' | tee -a "$OUT"
loadtool cold-verify "$DATA" "$DATA/tokens.txt" "${SAMPLES:-20000}" | sed "s/\$/ idle_before_pct=${IDLE_PCT:-?}/" | tee -a "$OUT"
python3 "$BENCH_DIR/coldverify_baseline.py" "$DATA/latchkey.db" "${SAMPLES:-20000}" | sed 's/$/ round=after/' | tee -a "$OUT"
loadtool grant-memory "$DATA" "$DATA/tokens.txt" "$n" | tee -a "$OUT"
loadtool single-flight 64 | tee -a "$OUT"
