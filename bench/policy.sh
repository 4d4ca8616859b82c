#!/bin/bash
# Forward-auth with a rate-limited token against forward-auth with a plain one (issue 15):
#   GET /auth/verify with a client token that has no verify-time policy, then with one that
#   has a rate limit too high to be reached (10⁹ per day: every request is counted and
#   admitted), interleaved over ROUNDS rounds, same server, same run. The plain token is the
#   baseline; target: the rate-limited one ≥ 0.9× its req/s.
# Env: DUR (15), CONNS (32), THREADS (2), ROUNDS (3), LATCHKEY (target/release/latchkey).
set -u
source "$(dirname "$0")/lib.sh"
need
ROUNDS=${ROUNDS:-3}
DATA=$WORK/policy-data; rm -rf "$DATA"
start_latchkey "$DATA" || exit 1
trap 'stop_latchkey' EXIT
ADMIN=$(admin_token "$DATA")
H=(-H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json")
WS=$(curl -sf "${H[@]}" http://127.0.0.1:$LK_PORT/api/v1/workspaces | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
make_token() {
  curl -sf -X POST "${H[@]}" -d "$1" http://127.0.0.1:$LK_PORT/api/v1/workspaces/$WS/tokens \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
PLAIN=$(make_token '{"name":"bench-plain","type":"client"}')
LIMITED=$(make_token '{"name":"bench-limited","type":"client","rate_limit":{"limit":1000000000,"window_secs":86400}}')
for t in "$PLAIN" "$LIMITED"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" http://127.0.0.1:$LK_PORT/auth/verify)
  note "precheck -> $code"; [ "$code" = 200 ] || exit 1
done
R=$BENCH_DIR/wrk/report.lua
DUR=3 OUT=/dev/null wrk_run warmup http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $PLAIN" -- $LK_PID >/dev/null
for round in $(seq "$ROUNDS"); do
  wrk_run forward-auth-plain http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $PLAIN" -- $LK_PID
  wrk_run forward-auth-rate-limited http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $LIMITED" -- $LK_PID
done
# Every rate-limited request was admitted (a refusal would be a 429 counted as non-2xx).
grep '^RESULT name=forward-auth-' "$OUT" | tail -$((2 * ROUNDS)) >&2
