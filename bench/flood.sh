#!/bin/bash
# A flood of invalid tokens against valid traffic, on one node with the default throttle.
# Two wrk processes (1 thread, CONNS/2 connections each) run side by side:
#   A  valid + valid   (the baseline: the measured stream shares the server with a second
#                       stream of valid traffic)
#   B  valid + flood   (the second stream is invalid tokens from many client IPs
#                       (X-Forwarded-For): half bad checksums, half well-formed unknown
#                       tokens drawn from UNKNOWN distinct ones, each sent many times)
# The measured valid stream's req/s in B over A is the "slows valid traffic" figure; the
# store reads the flood caused (cache misses) are compared with the distinct unknown tokens.
set -u
source "$(dirname "$0")/lib.sh"
need
UNKNOWN=${UNKNOWN:-2000}
n=1000
DATA=$WORK/scale-$n
if [ ! -s "$DATA/tokens.txt" ]; then
  rm -rf "$DATA"; mkdir -p "$DATA"
  loadtool bulk-load "$DATA" "$n" "$DATA/tokens.txt" | tee -a "$OUT"
fi
python3 "$BENCH_DIR/token.py" lkp "$UNKNOWN" > "$WORK/unknown.txt"
start_latchkey "$DATA" || exit 1
trap 'stop_latchkey' EXIT
half=$(( CONNS / 2 ))
T=$BENCH_DIR/wrk/tokens.lua; F=$BENCH_DIR/wrk/flood.lua
# warm the cache with the valid tokens
TOKENS_FILE=$DATA/tokens.txt DUR=3 OUT=/dev/null wrk_run warm http://127.0.0.1:$LK_PORT/auth/verify -s $T -- $LK_PID >/dev/null
second() { # second wrk stream in the background, a little longer than the measured one
  TOKENS_FILE=$DATA/tokens.txt UNKNOWN_FILE=$WORK/unknown.txt \
    wrk -t1 -c"$half" -d"$((DUR + 2))s" --timeout 10s -s "$1" http://127.0.0.1:$LK_PORT/auth/verify > "$WORK/second.txt" 2>&1 &
  SECOND=$!; sleep 1
}
for round in 1 2; do
  second "$T"
  TOKENS_FILE=$DATA/tokens.txt THREADS=1 CONNS=$half QUIET_MAX=0 wrk_run flood-A-valid-beside-valid http://127.0.0.1:$LK_PORT/auth/verify -s $T -- $LK_PID
  wait $SECOND; result "name=flood-A-second-stream $(grep ^RESULT $WORK/second.txt | sed 's/^RESULT //')"
  m0=$(metric latchkey_verifier_cache_misses_total); n0=$(metric latchkey_verifier_negative_hits_total)
  b0=$(metric latchkey_verifier_bad_format_total)
  k0=$(metric latchkey_verifier_known_refusals_total); c0=$(metric latchkey_verifier_catch_up_reads_total)
  second "$F"
  TOKENS_FILE=$DATA/tokens.txt THREADS=1 CONNS=$half QUIET_MAX=0 wrk_run flood-B-valid-beside-flood http://127.0.0.1:$LK_PORT/auth/verify -s $T -- $LK_PID
  wait $SECOND; result "name=flood-B-flood-stream $(grep ^RESULT $WORK/second.txt | sed 's/^RESULT //')"
  m1=$(metric latchkey_verifier_cache_misses_total); n1=$(metric latchkey_verifier_negative_hits_total)
  b1=$(metric latchkey_verifier_bad_format_total)
  k1=$(metric latchkey_verifier_known_refusals_total); c1=$(metric latchkey_verifier_catch_up_reads_total)
  result "name=flood-B-store round=$round distinct_unknown=$UNKNOWN store_reads=$(( ${m1%.*} - ${m0%.*} )) negative_hits=$(( ${n1%.*} - ${n0%.*} )) known_refusals=$(( ${k1%.*} - ${k0%.*} )) catch_up_reads=$(( ${c1%.*} - ${c0%.*} )) bad_format=$(( ${b1%.*} - ${b0%.*} ))"
done
