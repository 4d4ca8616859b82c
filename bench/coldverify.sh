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
loadtool cold-verify "$DATA" "$DATA/tokens.txt" "${SAMPLES:-20000}" | sed "s/\$/ idle_before_pct=${IDLE_PCT:-?}/" | tee -a "$OUT"
loadtool grant-memory "$DATA" "$DATA/tokens.txt" "$n" | tee -a "$OUT"
loadtool single-flight 64 | tee -a "$OUT"
