#!/bin/bash
# Start time to /readyz on an empty data dir (first start: hash key, migrations,
# bootstrap with the default Argon2 cost) and on an existing one; idle RSS after start.
# Env: STARTS (5).
set -u
source "$(dirname "$0")/lib.sh"
need
for kind in empty existing; do
  for i in $(seq "${STARTS:-5}"); do
    DATA=$WORK/start-data
    [ "$kind" = empty ] && rm -rf "$DATA"
    wait_quiet
    ms=$(python3 - "$LATCHKEY" "$DATA" "$LK_PORT" <<'PY'
import os, socket, subprocess, sys, time
exe, data, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = dict(os.environ, LATCHKEY_HASH_KEY="6c617463686b65792d62656e63686d61726b2d6b65792d6e6f742d7365637265", RUST_LOG="warn")
t0 = time.perf_counter()
p = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
req = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(req)
        if s.recv(64).startswith(b"HTTP/1.1 200"):
            break
    except OSError:
        pass
    finally:
        try: s.close()
        except Exception: pass
    time.sleep(0.001)
    if time.perf_counter() - t0 > 10:
        break
ready = (time.perf_counter() - t0) * 1000
time.sleep(3)
rss = 0
for line in open(f"/proc/{p.pid}/status"):
    if line.startswith("VmRSS:"):
        rss = int(line.split()[1])
p.terminate(); p.wait()
print(f"{ready:.1f} {rss}")
PY
)
    set -- $ms
    result "name=startup-$kind run=$i ready_ms=$1 idle_rss_kb=$2 idle_before_pct=${IDLE_PCT:-?}"
  done
done
