# Helpers shared by the bench scripts. Source me (bash).
#
# Everything runs on loopback. Work files live under $WORK (default /tmp/latchkey-bench);
# results are printed as `RESULT ...` lines and appended to $OUT (default
# $WORK/results.txt), which bench/report.py turns into tables.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export BENCH_DIR
WORK=${WORK:-/tmp/latchkey-bench}
OUT=${OUT:-$WORK/results.txt}
LATCHKEY=${LATCHKEY:-$REPO/target/release/latchkey}
DUR=${DUR:-15}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
NGINX_PORT=${NGINX_PORT:-18090}
LK_PORT=${LK_PORT:-18480}
mkdir -p "$WORK"

note() { echo "# $*" >&2; }
result() { echo "RESULT $*" | tee -a "$OUT"; }

need() {
  command -v wrk >/dev/null || { note "wrk missing: apt-get install -y wrk"; exit 1; }
  [ -x "$LATCHKEY" ] || { note "$LATCHKEY missing: cargo build --release -p latchkey-cli"; exit 1; }
}

# cpu_ticks PID... -> utime+stime (incl. reaped children) of the given pids, in clock ticks
cpu_ticks() { local t=0 p; for p in "$@"; do
  [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15+$16+$17}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
# sys_busy -> busy ticks (all CPUs), total ticks
sys_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
# machine_load -> % of both cores busy over 2 s (before a run: how loaded the machine is)
machine_load() { local b0 a0 b1 a1; read b0 a0 < <(sys_busy); sleep 2; read b1 a1 < <(sys_busy)
  awk -v b=$((b1-b0)) -v a=$((a1-a0)) 'BEGIN{printf "%.0f", 100*b/a}'; }
# wait_quiet: wait (at most QUIET_MAX s) until the machine is idle (< 15% busy over 2 s)
wait_quiet() { local i l=0; for ((i=0; i<${QUIET_MAX:-60}; i+=2)); do
  l=$(machine_load); [ "$l" -lt 15 ] && { IDLE_PCT=$l; return 0; }; done
  IDLE_PCT=$l; note "machine still ${l}% busy after ${QUIET_MAX:-60}s: this run is disturbed"; }

# rss_kb PID -> resident set size in KiB
rss_kb() { awk '/^VmRSS:/{print $2}' /proc/$1/status 2>/dev/null || echo 0; }

# wrk_run NAME URL [wrk args...] -- PIDS...
# One wrk run (THREADS threads, CONNS connections, DUR s); prints and records one RESULT
# line with the wrk summary, the server's CPU cores and how busy the machine was before.
wrk_run() {
  local name=$1 url=$2; shift 2
  local args=() pids=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  pids=("$@")
  wait_quiet
  local hz c0 c1 b0 a0 b1 a1 out line
  hz=$(getconf CLK_TCK)
  c0=$(cpu_ticks "${pids[@]}"); read b0 a0 < <(sys_busy)
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --timeout 10s --latency "${args[@]}" "$url" 2>&1)
  c1=$(cpu_ticks "${pids[@]}"); read b1 a1 < <(sys_busy)
  line=$(echo "$out" | grep '^RESULT' | tail -1 | sed 's/^RESULT //')
  [ -z "$line" ] && { note "wrk failed: $out"; line="rps=0"; }
  local srv busy
  srv=$(awk -v d=$((c1-c0)) -v hz="$hz" -v s="$DUR" 'BEGIN{printf "%.2f", d/hz/s}')
  busy=$(awk -v b=$((b1-b0)) -v a=$((a1-a0)) 'BEGIN{printf "%.0f", 100*b/a}')
  result "name=$name conns=$CONNS threads=$THREADS $line server_cores=$srv machine_busy_pct=$busy idle_before_pct=${IDLE_PCT:-?}"
}

# field NAME KEY -> the value of KEY in the last RESULT line named NAME in $OUT
field() { grep "^RESULT name=$1 " "$OUT" | tail -1 | tr ' ' '\n' | awk -F= -v k="$2" '$1==k{print $2}'; }

# --- nginx `return 200`, 1 worker (as in shared/peers) --------------------------------
start_nginx() {
  local d=$WORK/nginx
  mkdir -p $d/logs $d/tmp
  cat > $d/nginx.conf <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
}
EOF
  stop_nginx
  ${NGINX:-/usr/sbin/nginx} -p $d -c $d/nginx.conf
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:$NGINX_PORT/ && break; sleep 0.1; done
  NGINX_PIDS="$(cat $d/nginx.pid) $(ps -o pid= --ppid $(cat $d/nginx.pid) | tr '\n' ' ')"
}
stop_nginx() {
  local f=$WORK/nginx/nginx.pid
  if [ -f $f ] && kill -0 "$(cat $f)" 2>/dev/null; then kill "$(cat $f)"; sleep 0.3; fi
  rm -f $f
}

# --- Latchkey ------------------------------------------------------------------------
# start_latchkey DATA_DIR [extra config toml lines]: serves on $LK_PORT; sets LK_PID.
# The admin token is preset (DATA_DIR/admin.token, made if missing); the hash key is the
# benchmarks' fixed one, so data dirs bulk-loaded by the loadtool work.
BENCH_HASH_KEY=6c617463686b65792d62656e63686d61726b2d6b65792d6e6f742d7365637265
start_latchkey() {
  local data=$1; shift
  mkdir -p "$data"
  [ -f "$data/admin.token" ] || python3 "$BENCH_DIR/token.py" > "$data/admin.token"
  {
    echo 'trusted_proxies = ["127.0.0.1/32"]'
    echo '[passwords]'
    echo 'memory_kib = 1024'
    echo 'iterations = 1'
    for l in "$@"; do echo "$l"; done
  } > "$WORK/latchkey.toml"
  LATCHKEY_HASH_KEY=$BENCH_HASH_KEY LATCHKEY_ADMIN_PASSWORD=benchmark-password \
    LATCHKEY_ADMIN_TOKEN=$(cat "$data/admin.token") RUST_LOG=${RUST_LOG:-warn} \
    "$LATCHKEY" serve --listen 127.0.0.1:$LK_PORT --data-dir "$data" --config "$WORK/latchkey.toml" \
    > "$WORK/latchkey.log" 2>&1 &
  LK_PID=$!
  for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:$LK_PORT/readyz && return 0; sleep 0.1; done
  note "latchkey did not become ready; see $WORK/latchkey.log"; tail -5 "$WORK/latchkey.log" >&2; return 1
}
stop_latchkey() {
  [ -n "${LK_PID:-}" ] && kill "$LK_PID" 2>/dev/null && wait "$LK_PID" 2>/dev/null
  LK_PID=
}
admin_token() { cat "$1/admin.token"; }
metric() { curl -s http://127.0.0.1:$LK_PORT/metrics | awk -v m="$1" '$1==m{print $2}'; }

# The loadtool (bulk load, cold verify, grant memory, single flight), built once.
loadtool() { (cd "$REPO" && cargo bench -q -p latchkey-server --bench loadtool -- "$@"); }

machine_line() {
  local cpu; cpu=$(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2; exit}')
  echo "$(nproc) cores ($cpu), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
}
