#!/bin/bash
# Token-checked HTTP against nginx `return 200`, same machine, same run.
#   nginx `return 200` (1 worker)  vs  Latchkey GET /auth/verify and GET /api/v1/me with a
#   Bearer token (plus /healthz without a token and /auth/verify with a bad checksum).
# Env: DUR (15), CONNS (32), THREADS (2), ROUNDS (3: the endpoints interleaved, medians
# reported by report.py), LATCHKEY (target/release/latchkey).
set -u
source "$(dirname "$0")/lib.sh"
need
ROUNDS=${ROUNDS:-3}
DATA=$WORK/http-data; rm -rf "$DATA"
start_nginx
# The failure throttle is lifted so the 401 run measures the checksum path, not 429s.
start_latchkey "$DATA" "[throttle]" "failed_token_checks = 4000000000" || exit 1
trap 'stop_latchkey; stop_nginx' EXIT
TOKEN=$(admin_token "$DATA")
BAD=$(python3 - "$TOKEN" <<'PY'
import sys; t = sys.argv[1]; print(t[:-1] + ("1" if t[-1] == "0" else "0"))
PY
)
for path in /auth/verify /api/v1/me; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$LK_PORT$path)
  note "precheck $path -> $code"; [ "$code" = 200 ] || exit 1
done
R=$BENCH_DIR/wrk/report.lua
# warm-up (not recorded)
DUR=3 OUT=/dev/null wrk_run warmup http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $TOKEN" -- $LK_PID >/dev/null
DUR=3 OUT=/dev/null wrk_run warmup http://127.0.0.1:$NGINX_PORT/ -s $R -- $NGINX_PIDS >/dev/null
for round in $(seq "$ROUNDS"); do
  wrk_run nginx-return200 http://127.0.0.1:$NGINX_PORT/ -s $R -- $NGINX_PIDS
  wrk_run latchkey-auth-verify http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $TOKEN" -- $LK_PID
  wrk_run latchkey-me http://127.0.0.1:$LK_PORT/api/v1/me -s $R -H "Authorization: Bearer $TOKEN" -- $LK_PID
done
wrk_run latchkey-healthz-notoken http://127.0.0.1:$LK_PORT/healthz -s $R -- $LK_PID
wrk_run latchkey-auth-verify-bad-checksum-401 http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $BAD" -- $LK_PID
result "name=latchkey-idle-after-http rss_kb=$(rss_kb $LK_PID)"
