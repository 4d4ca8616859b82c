#!/bin/bash
# Issuance through the API, limits lifted: POST /api/v1/workspaces/{ws}/tokens (`client`
# tokens) with the admin token, ISSUE_CONNS connections (16). On SQLite (synchronous=FULL,
# the default) or, with ISSUE_DATABASE_URL set, on that PostgreSQL database (it must be
# empty). Baseline of the same run: nginx `return 200` answering the same wrk script (the
# HTTP ceiling of this machine for these requests). Env: DUR, ISSUE_CONNS.
set -u
source "$(dirname "$0")/lib.sh"
need
CONNS=${ISSUE_CONNS:-16}
DB_URL=${ISSUE_DATABASE_URL:-}
BACKEND=sqlite; [ -n "$DB_URL" ] && BACKEND=postgres
DATA=$WORK/issuance-data; rm -rf "$DATA"
[ -n "$DB_URL" ] && export LATCHKEY_DATABASE_URL=$DB_URL
start_latchkey "$DATA" || exit 1
trap 'stop_latchkey; stop_nginx' EXIT
TOKEN=$(admin_token "$DATA")
H=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
curl -sf -X PATCH "${H[@]}" -d '{"max_active_tokens": null}' http://127.0.0.1:$LK_PORT/api/v1/instance/settings > /dev/null || { note "could not lift the limit"; exit 1; }
WS=$(curl -sf "${H[@]}" http://127.0.0.1:$LK_PORT/api/v1/workspaces | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${H[@]}" -d '{"name":"precheck","type":"client"}' http://127.0.0.1:$LK_PORT/api/v1/workspaces/$WS/tokens)
note "precheck create -> $code"; [ "$code" = 201 ] || exit 1
start_nginx
WORKSPACE_ID=$WS ADMIN_TOKEN=$TOKEN wrk_run issuance-baseline-nginx http://127.0.0.1:$NGINX_PORT/ -s $BENCH_DIR/wrk/create.lua -- $NGINX_PIDS
stop_nginx
WORKSPACE_ID=$WS ADMIN_TOKEN=$TOKEN wrk_run issuance-$BACKEND http://127.0.0.1:$LK_PORT/ -s $BENCH_DIR/wrk/create.lua -- $LK_PID
if [ -n "$DB_URL" ]; then
  count=$(psql "$DB_URL" -tAc 'select count(*) from tokens' 2>/dev/null || echo "?")
else
  count=$(sqlite3 "$DATA/latchkey.db" 'select count(*) from tokens' 2>/dev/null || echo "?")
fi
result "name=issuance-$BACKEND-count tokens_in_store=$count"
