"""docs/operations.md "TLS behind nginx or Caddy", as written: the nginx server blocks and
the Latchkey settings are copied from the page (only the ports, the certificate paths and
the upstream address are filled in), run on a real nginx with a certificate made here, in
front of the real binary. Checks what the recipe promises: HTTPS answers, plain HTTP is
redirected, session cookies are Secure, and a client cannot forge its IP through
X-Forwarded-For (the audit log records the proxy's view).

Needs nginx and openssl; skips with the reason otherwise (fails under
LATCHKEY_TEST_REQUIRE_ALL=1).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import ssl
import string
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Iterator, List

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations.md"
PASSWORD = "tls test password 123"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
DEADLINE = 60.0


def skip_or_fail(reason: str) -> None:
    if os.environ.get("LATCHKEY_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (LATCHKEY_TEST_REQUIRE_ALL=1 turns this skip into a failure)")
    pytest.skip(reason)


def make_token() -> str:
    body = "".join(random.SystemRandom().choice(BASE62) for _ in range(32))
    n = zlib.crc32(body.encode())
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
    return f"lkp_{body}{digits.rjust(6, '0')}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## TLS behind nginx or Caddy")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def block(section: str, language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    assert found, f"no ```{language} block in the TLS section of {DOC}"
    return str(found[0])


def wait_until(what: str, check, deadline: float = DEADLINE) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if check():
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def tools() -> None:
    for tool in ("nginx", "openssl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            skip_or_fail(f"{tool} is not installed (.ci/run installs nginx)")


@pytest.fixture
def processes() -> Iterator[List[subprocess.Popen]]:
    """Processes the test started, each the leader of its own process group
    (`process_group=0`): stopped with SIGTERM, then whatever is left of the group (an
    nginx worker whose master is gone) is killed, so no test leaves a process behind."""
    started: List[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_nginx_tls_recipe_as_written(
    tools: None, processes: List[subprocess.Popen], tmp_path: Path
) -> None:
    section = tls_section()
    https_port, http_port = free_port(), free_port()
    public_url = f"https://localhost:{https_port}"

    # A certificate for localhost, as certbot or a CA would hand over.
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    # Latchkey with the page's settings (public_url filled in), on a port of its own.
    settings = block(section, "toml").replace("https://keys.example.com", public_url)
    assert "trusted_proxies" in settings and "public_url" in settings
    config = tmp_path / "latchkey.toml"
    config.write_text(
        settings + "\n[passwords]\nmemory_kib = 64\niterations = 1\n", encoding="utf-8"
    )
    admin_token = make_token()
    binary = os.environ.get("LATCHKEY_BIN", str(REPO / "target" / "debug" / "latchkey"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    env.update(
        LATCHKEY_CONFIG=str(config),
        LATCHKEY_ADMIN_PASSWORD=PASSWORD,
        LATCHKEY_ADMIN_TOKEN=admin_token,
        LATCHKEY_LOG_FORMAT="text",
    )
    latchkey = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        process_group=0,
    )  # fmt: skip
    processes.append(latchkey)
    address: List[str] = []
    announced = threading.Event()

    def read() -> None:
        assert latchkey.stderr is not None
        for raw in latchkey.stderr:
            line = raw.decode("utf-8", "replace")
            if not address and "latchkey listening" in line and "address=" in line:
                address.append(line.split("address=", 1)[1].split()[0])
                announced.set()
        announced.set()

    threading.Thread(target=read, daemon=True).start()
    assert announced.wait(DEADLINE) and address, "latchkey did not start"
    upstream = address[0]

    # nginx with the page's server blocks: ports, certificate paths and upstream filled in.
    recipe = block(section, "nginx")
    recipe = recipe.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    recipe = recipe.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    recipe = "\n".join(line for line in recipe.splitlines() if "listen [::]" not in line)
    recipe = recipe.replace("/etc/ssl/keys.example.com/fullchain.pem", str(cert))
    recipe = recipe.replace("/etc/ssl/keys.example.com/privkey.pem", str(key))
    recipe = recipe.replace("http://127.0.0.1:8080", f"http://{upstream}")
    assert str(cert) in recipe and upstream in recipe, recipe
    d = tmp_path
    (d / "nginx.conf").write_text(
        f"worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n"
        f"  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n"
        f"  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{recipe}\n}}\n",
        encoding="utf-8",
    )
    nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
    nginx = subprocess.Popen(
        [nginx_binary, "-p", str(d), "-c", str(d / "nginx.conf")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        process_group=0,
    )  # fmt: skip
    processes.append(nginx)

    with httpx.Client(
        base_url=public_url, verify=ssl.create_default_context(cafile=str(cert)), timeout=30
    ) as https:

        def ready() -> bool:
            if nginx.poll() is not None:
                pytest.fail("nginx exited:\n" + (d / "error.log").read_text())
            return https.get("/readyz").status_code == 200

        wait_until("/readyz through nginx over TLS", ready)

        # Plain HTTP is sent to HTTPS.
        plain = httpx.get(f"http://localhost:{http_port}/readyz", follow_redirects=False)
        assert plain.status_code == 301
        assert plain.headers["location"].startswith("https://localhost")

        # Sessions made over TLS are Secure (public_url is https) and HttpOnly.
        signed_in = https.post(
            "/api/v1/session",
            json={"username": "admin", "password": PASSWORD},
            headers={"Origin": public_url},
        )
        assert signed_in.status_code == 200, signed_in.text
        session = next(
            c for c in signed_in.headers.get_list("set-cookie") if c.startswith("latchkey_session=")
        )
        assert "Secure" in session and "HttpOnly" in session, session

        # A forged X-Forwarded-For does not reach the audit log: nginx replaces it.
        auth = {"Authorization": f"Bearer {admin_token}", "X-Forwarded-For": "203.0.113.9"}
        me = https.get("/api/v1/me", headers=auth).json()
        ws = next(m for m in me["memberships"] if m["workspace_name"] == "Workspace 1")
        created = https.post(
            f"/api/v1/workspaces/{ws['workspace_id']}/tokens",
            headers=auth,
            json={"name": "through-nginx", "type": "client"},
        )
        assert created.status_code == 201, created.text
        events = https.get(
            "/api/v1/audit-events", headers=auth, params={"token": created.json()["id"]}
        ).json()["items"]
        ips = {e["ip"] for e in events if e["action"] == "token.created"}
        assert ips == {"127.0.0.1"}, events
