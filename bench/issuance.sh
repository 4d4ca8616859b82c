#!/bin/bash
# Issuance through the API on SQLite, limits lifted: POST /api/v1/workspaces/{ws}/tokens
# (`client` tokens) with the admin token, CONNS connections. Env: DUR, CONNS (8).
set -u
source "$(dirname "$0")/lib.sh"
need
CONNS=${ISSUE_CONNS:-16}
DATA=$WORK/issuance-data; rm -rf "$DATA"
start_latchkey "$DATA" || exit 1
trap 'stop_latchkey' EXIT
TOKEN=$(admin_token "$DATA")
H=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
curl -sf -X PATCH "${H[@]}" -d '{"max_active_tokens": null}' http://127.0.0.1:$LK_PORT/api/v1/instance/settings > /dev/null || { note "could not lift the limit"; exit 1; }
WS=$(curl -sf "${H[@]}" http://127.0.0.1:$LK_PORT/api/v1/workspaces | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${H[@]}" -d '{"name":"precheck","type":"client"}' http://127.0.0.1:$LK_PORT/api/v1/workspaces/$WS/tokens)
note "precheck create -> $code"; [ "$code" = 201 ] || exit 1
WORKSPACE_ID=$WS ADMIN_TOKEN=$TOKEN wrk_run issuance-sqlite http://127.0.0.1:$LK_PORT/ -s $BENCH_DIR/wrk/create.lua -- $LK_PID
count=$(sqlite3 "$DATA/latchkey.db" 'select count(*) from tokens' 2>/dev/null || echo "?")
result "name=issuance-sqlite-count tokens_in_store=$count"
