#!/bin/bash
# Latchkey's and the peers' token-checked endpoints in one session (shared/peers: Unleash
# 8.2.0 and Label Studio 1.23.2, big installs: a benchmark, never part of tests or CI).
# 1. installs and starts the peers with shared/peers/setup.sh (bounded by SETUP_TIMEOUT,
#    default 900 s; a failure is recorded and the run goes on with what is up);
# 2. runs nginx `return 200`, Latchkey (/auth/verify, /api/v1/me) and every peer
#    endpoint with the same wrk settings (-t2 -c32, DUR s) back to back;
# 3. report.py writes the ratios (Latchkey / peer) to bench/RESULTS.md.
# Env: PEERS_DIR (../shared/peers from the repo), PEER_GROUPS ("unleash ls-uwsgi ls-runserver").
set -u
source "$(dirname "$0")/lib.sh"
need
PEERS_DIR=${PEERS_DIR:-$REPO/../shared/peers}
[ -x "$PEERS_DIR/setup.sh" ] || [ -f "$PEERS_DIR/setup.sh" ] || { note "no peers at $PEERS_DIR"; exit 1; }
SETUP_LOG=$WORK/peers-setup.log
started=$(date +%s)
if timeout "${SETUP_TIMEOUT:-900}" bash "$PEERS_DIR/setup.sh" > "$SETUP_LOG" 2>&1; then
  result "name=peers-setup status=ok secs=$(( $(date +%s) - started ))"
else
  rc=$?
  result "name=peers-setup status=failed rc=$rc secs=$(( $(date +%s) - started )) log=$SETUP_LOG"
  tail -20 "$SETUP_LOG" >&2
fi
# Latchkey beside them (Label Studio has 8080: Latchkey stays on $LK_PORT).
DATA=$WORK/peers-latchkey; rm -rf "$DATA"
start_latchkey "$DATA" || exit 1
trap 'stop_latchkey' EXIT
TOKEN=$(admin_token "$DATA")
R=$BENCH_DIR/wrk/report.lua
P=/tmp/latchkey-peers
if curl -sf -o /dev/null http://127.0.0.1:18080/; then
  wrk_run peer-nginx-return200 http://127.0.0.1:18080/ -s $R -- $(cat $P/nginx/nginx.pid) $(ps -o pid= --ppid "$(cat $P/nginx/nginx.pid)")
fi
wrk_run peer-latchkey-auth-verify http://127.0.0.1:$LK_PORT/auth/verify -s $R -H "Authorization: Bearer $TOKEN" -- $LK_PID
wrk_run peer-latchkey-me http://127.0.0.1:$LK_PORT/api/v1/me -s $R -H "Authorization: Bearer $TOKEN" -- $LK_PID
# The peers' own scripts, same wrk settings; their RESULT lines carry name=<endpoint>.
for g in ${PEER_GROUPS:-unleash ls-uwsgi ls-runserver}; do
  case $g in
    unleash) url=http://127.0.0.1:4242/health; cmd=("$PEERS_DIR/bench-unleash.sh") ;;
    ls-uwsgi) url=http://127.0.0.1:8081/health; cmd=("$PEERS_DIR/bench-ls.sh" ls-uwsgi $P/ls-uwsgi.pid 8081) ;;
    ls-runserver) url=http://127.0.0.1:8080/health; cmd=("$PEERS_DIR/bench-ls.sh" ls-runserver $P/ls-runserver.pid 8080) ;;
    *) continue ;;
  esac
  if ! curl -sf -o /dev/null --max-time 5 "$url"; then result "name=peer-$g status=not-running"; continue; fi
  DUR=$DUR CONNS=$CONNS bash "${cmd[@]}" 2>&1 | tee -a "$WORK/peers-bench.log" | grep '^RESULT' | grep -v -- '-warmup$' |
    while read -r line; do
      name=$(echo "$line" | tr ' ' '\n' | awk -F= '$1=="name"{print $2}')
      result "name=peer-$name $(echo "$line" | sed 's/^RESULT //; s/ name=[^ ]*//')"
    done
done
note "peers still running; stop them with $PEERS_DIR/teardown.sh"
