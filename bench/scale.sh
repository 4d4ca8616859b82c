#!/bin/bash
# Flat at scale: 10^3 → 10^6 stored tokens, bulk-loaded through the SQLite store (the
# loadtool's `bulk-load`, not the API), every token's grant in the cache (warmed by a pass
# over all tokens), then GET /auth/verify with a different token on every request.
# Also the RSS delta per cached grant. Env: SIZES ("1000 10000 100000 1000000"), DUR, CONNS.
set -u
source "$(dirname "$0")/lib.sh"
need
SIZES=${SIZES:-1000 10000 100000 1000000}
R=$BENCH_DIR/wrk/tokens.lua
for n in $SIZES; do
  DATA=$WORK/scale-$n
  if [ ! -s "$DATA/tokens.txt" ] || [ "$(wc -l < "$DATA/tokens.txt")" -ne "$n" ]; then
    rm -rf "$DATA"; mkdir -p "$DATA"
    loadtool bulk-load "$DATA" "$n" "$DATA/tokens.txt" | tee -a "$OUT"
  fi
  start_latchkey "$DATA" || exit 1
  sleep 1
  rss0=$(rss_kb $LK_PID)
  # Warm: walk every token until each grant is cached. Each pass continues where the last
  # stopped (TOKENS_SKIP), so the passes cover the tokens instead of rewalking the first.
  skip=0; : > "$WORK/warm.txt"
  for pass in 1 2 3 4 5 6 7 8 9 10; do
    TOKENS_FILE=$DATA/tokens.txt TOKENS_SKIP=$skip DUR=$(( n >= 100000 ? 20 : 3 )) OUT=$WORK/warm.txt \
      wrk_run warm-$n http://127.0.0.1:$LK_PORT/auth/verify -s $R -- $LK_PID > /dev/null
    walked=$(OUT=$WORK/warm.txt field warm-$n requests)
    skip=$(( skip + ${walked:-0} / THREADS ))
    cached=$(metric latchkey_verifier_cached_grants)
    note "n=$n pass $pass: ${cached%.*} grants cached"
    [ "${cached%.*}" -ge "$n" ] && break
  done
  sleep 1
  rss1=$(rss_kb $LK_PID)
  cached=$(metric latchkey_verifier_cached_grants)
  result "name=scale-$n-memory tokens=$n cached_grants=${cached%.*} rss_start_kb=$rss0 rss_warm_kb=$rss1 bytes_per_grant=$(( (rss1 - rss0) * 1024 / n ))"
  TOKENS_FILE=$DATA/tokens.txt wrk_run scale-$n-auth-verify http://127.0.0.1:$LK_PORT/auth/verify -s $R -- $LK_PID
  TOKENS_FILE=$DATA/tokens.txt TOKENS_PATH=/api/v1/me wrk_run scale-$n-me http://127.0.0.1:$LK_PORT/api/v1/me -s $R -- $LK_PID
  misses=$(metric latchkey_verifier_cache_misses_total)
  note "n=$n store reads so far: $misses"
  stop_latchkey
done
