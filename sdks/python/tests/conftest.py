"""Test harness: runs the real ``latchkey`` binary on a random port (no mock server).

The binary comes from ``LATCHKEY_BIN``, else ``<repo>/target/debug/latchkey`` (``scripts/test.sh``
builds it first). A session-scoped server serves most tests; ``make_server`` starts a fresh
one for tests that need isolation (throttles, org settings).

``LATCHKEY_TEST_REQUIRE_ALL=1`` (set by CI) turns every skip into a failure.
"""

from __future__ import annotations

import os
import random
import signal
import string
import subprocess
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
ADMIN_PASSWORD = "preset admin password 123"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
START_DEADLINE = 60.0


# ----------------------------------------------------------------------------- helpers


def crc_base62(body: str) -> str:
    """CRC32 (zlib) of the 32 random characters in base62, MSB first, padded to 6."""
    n = zlib.crc32(body.encode("ascii"))
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
    return digits.rjust(6, "0")


def make_token(prefix: str = "lkp") -> str:
    """A well-formed token (valid checksum) that the server has never issued."""
    body = "".join(random.SystemRandom().choice(BASE62) for _ in range(32))
    return f"{prefix}_{body}{crc_base62(body)}"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def require_all() -> bool:
    return os.environ.get("LATCHKEY_TEST_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str) -> None:
    """Skips with a printed reason, or fails under LATCHKEY_TEST_REQUIRE_ALL=1."""
    if require_all():
        pytest.fail(
            f"{reason} (LATCHKEY_TEST_REQUIRE_ALL=1 turns this skip into a failure)", pytrace=False
        )
    pytest.skip(reason)


def latchkey_binary() -> Path:
    configured = os.environ.get("LATCHKEY_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "latchkey"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"latchkey binary not found at {path}: build it with `cargo build -p latchkey-cli` "
            "(scripts/test.sh does) or point LATCHKEY_BIN at it",
            pytrace=False,
        )
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


DEFAULT_CONFIG: Dict[str, Dict[str, Any]] = {
    "passwords": {"memory_kib": 64, "iterations": 1},
    "throttle": {"sign_in_attempts": 1000, "failed_token_checks": 10000},
    "jwt": {"ttl_secs": 3},
}


def write_config(path: Path, overrides: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
    sections: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_CONFIG.items()}
    for section, values in (overrides or {}).items():
        sections.setdefault(section, {}).update(values)
    # Section "" holds top-level keys (``trusted_proxies``): written before any header.
    top = sections.pop("", {})
    text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in top.items())
    for section, values in sections.items():
        text += f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    path.write_text(text)


# ----------------------------------------------------------------------------- the server


@dataclass
class Server:
    url: str
    admin_token: str = field(repr=False)
    admin_password: str = field(repr=False)
    process: subprocess.Popen = field(repr=False)
    data_dir: Path = field(repr=False)
    log_lines: List[str] = field(default_factory=list, repr=False)

    def client(self, token: Optional[str] = None, **kwargs: Any):
        from latchkey import Client

        return Client(self.url, self.admin_token if token is None else token, **kwargs)

    def async_client(self, token: Optional[str] = None, **kwargs: Any):
        from latchkey import AsyncClient

        return AsyncClient(self.url, self.admin_token if token is None else token, **kwargs)

    def http(
        self, method: str, path: str, token: Optional[str] = None, **kwargs: Any
    ) -> httpx.Response:
        """A plain request, independent of the SDK."""
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def route_exists(self, method: str, path: str, **kwargs: Any) -> bool:
        """False when the server answers 404 for a route it lacks."""
        response = self.http(method, path, **kwargs)
        if response.status_code != 404:
            return True
        try:
            return response.json()["error"]["message"] != "route not found"
        except (ValueError, KeyError, TypeError):
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    @property
    def log_text(self) -> str:
        return "\n".join(self.log_lines)


def start_server(tmp: Path, config: Optional[Dict[str, Dict[str, Any]]] = None) -> Server:
    binary = latchkey_binary()
    tmp.mkdir(parents=True, exist_ok=True)
    data_dir = tmp / "data"
    config_path = tmp / "latchkey.toml"
    write_config(config_path, config)
    admin_token = make_token("lkp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    env.update(
        LATCHKEY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        LATCHKEY_ADMIN_TOKEN=admin_token,
        LATCHKEY_CONFIG=str(config_path),
        RUST_LOG="info",
        LATCHKEY_LOG_FORMAT="text",
    )
    stdout = open(tmp / "stdout.log", "wb")
    process = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
    )
    stdout.close()
    lines: List[str] = []
    address: List[str] = []
    announced = threading.Event()

    def read_stderr() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if not announced.is_set() and "latchkey listening" in line and "address=" in line:
                address.append(line.split("address=", 1)[1].split()[0])
                announced.set()
        announced.set()  # the process ended

    threading.Thread(target=read_stderr, name="latchkey-stderr", daemon=True).start()
    if not announced.wait(START_DEADLINE) or not address:
        process.kill()
        process.wait()
        pytest.fail(
            "latchkey did not announce its address; its stderr:\n" + "\n".join(lines[-30:]),
            pytrace=False,
        )
    url = f"http://{address[0]}"
    deadline = time.monotonic() + START_DEADLINE
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.wait()
            pytest.fail("latchkey never became ready:\n" + "\n".join(lines[-30:]), pytrace=False)
        time.sleep(0.05)
    return Server(url, admin_token, ADMIN_PASSWORD, process, data_dir, lines)


def _relax_limits(server: Server) -> None:
    """Tests create many personal tokens for the admin: lift the per-user cap."""
    me = server.http("GET", "/api/v1/me", token=server.admin_token).json()
    response = server.http(
        "PATCH",
        f"/api/v1/orgs/{me['org']['id']}/token-settings",
        token=server.admin_token,
        json={"max_tokens_per_user": None},
    )
    assert response.status_code == 200, response.text
    response = server.http(
        "PATCH",
        "/api/v1/instance/settings",
        token=server.admin_token,
        json={"max_active_tokens": None},
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("latchkey-shared"))
    _relax_limits(srv)
    yield srv
    srv.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts a fresh server (with config overrides) for a test that needs isolation."""
    started: List[Server] = []

    def make(config: Optional[Dict[str, Dict[str, Any]]] = None) -> Server:
        srv = start_server(tmp_path / f"server{len(started)}", config)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def admin(server: Server) -> Iterator[Any]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own LATCHKEY_URL / LATCHKEY_API_KEY must not leak into tests."""
    monkeypatch.delenv("LATCHKEY_URL", raising=False)
    monkeypatch.delenv("LATCHKEY_API_KEY", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def jwt_route(server: Server) -> None:
    """Skips (or, under LATCHKEY_TEST_REQUIRE_ALL=1, fails) only when the server answers 404
    for the token refresh route."""
    if not server.route_exists(
        "POST", "/api/v1/token/refresh", json={"refresh": server.admin_token}
    ):
        skip_or_fail(
            "the server answers 404 for POST /api/v1/token/refresh "
            "(JWT exchange not implemented yet)"
        )


@pytest.fixture
def introspect_route(server: Server) -> None:
    if not server.route_exists(
        "POST", "/oauth/introspect", token=server.admin_token, data={"token": server.admin_token}
    ):
        skip_or_fail("the server answers 404 for POST /oauth/introspect (not implemented yet)")


class RequestLog:
    """Records what a client sent, through httpx event hooks (the server stays real)."""

    def __init__(self) -> None:
        self.requests: List[httpx.Request] = []
        self.responses: List[httpx.Response] = []
        self.lock = threading.Lock()

    def on_request(self, request: httpx.Request) -> None:
        with self.lock:
            self.requests.append(request)

    def on_response(self, response: httpx.Response) -> None:
        with self.lock:
            self.responses.append(response)

    async def aon_request(self, request: httpx.Request) -> None:
        self.on_request(request)

    async def aon_response(self, response: httpx.Response) -> None:
        self.on_response(response)

    def http_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            event_hooks={"request": [self.on_request], "response": [self.on_response]}, **kwargs
        )

    def async_http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            event_hooks={"request": [self.aon_request], "response": [self.aon_response]}, **kwargs
        )

    def paths(self, method: Optional[str] = None) -> List[str]:
        with self.lock:
            return [r.url.path for r in self.requests if method is None or r.method == method]

    def count(self, path: str, method: Optional[str] = None) -> int:
        return sum(1 for p in self.paths(method) if p == path)

    def authorizations(self, path: Optional[str] = None) -> List[str]:
        with self.lock:
            return [
                r.headers.get("authorization", "")
                for r in self.requests
                if path is None or r.url.path == path
            ]


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()
