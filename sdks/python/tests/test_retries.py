"""Timeouts and retries against real sockets and a real server: connection errors and
429/503 are retried with backoff (honouring Retry-After) for idempotent requests and those
with an Idempotency-Key only; other 4xx never."""

from __future__ import annotations

import socket
import threading
import time
from typing import List

import pytest
from conftest import RequestLog, Server, make_token, unique

from latchkey import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    Client,
    NotFoundError,
    RateLimitError,
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recording_sleep(client: Client) -> List[float]:
    delays: List[float] = []
    client._sleep = delays.append  # no real waiting; the delays are checked instead
    return delays


def test_connection_errors_are_retried_for_idempotent_requests(request_log: RequestLog) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with Client(
        url, make_token("lkc"), max_retries=3, http_client=request_log.http_client()
    ) as client:
        delays = recording_sleep(client)
        with pytest.raises(APIConnectionError):
            client.list_projects()
        assert len(request_log.requests) == 4 and len(delays) == 3
        assert delays[0] < delays[2] <= 8

        request_log.requests.clear()
        delays.clear()
        with pytest.raises(APIConnectionError):
            client.create_project("never sent twice")
        assert len(request_log.requests) == 1 and delays == []

        # A POST with an Idempotency-Key is safe to repeat.
        request_log.requests.clear()
        with pytest.raises(APIConnectionError):
            client.tokens.rotate("some-id", idempotency_key="rotate-1")
        assert len(request_log.requests) == 4
        assert {r.headers["idempotency-key"] for r in request_log.requests} == {"rotate-1"}


def test_timeouts_raise_api_timeout_error() -> None:
    # A listener that accepts and never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with Client(
            f"http://127.0.0.1:{port}", make_token("lkc"), timeout=0.3, max_retries=1
        ) as client:
            recording_sleep(client)
            started = time.monotonic()
            with pytest.raises(APITimeoutError):
                client.me()
            assert time.monotonic() - started < 5
            assert len(accepted) == 2  # the first try and one retry
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_other_4xx_are_never_retried(
    admin: Client, server: Server, request_log: RequestLog
) -> None:
    with Client(
        server.url,
        server.admin_token,
        max_retries=3,
        jwt_exchange=False,
        http_client=request_log.http_client(),
    ) as client:
        with pytest.raises(NotFoundError):
            client.tokens.get("01a2155c-0000-7000-8000-000000000000")
        with pytest.raises(NotFoundError):
            client.tokens.delete("01a2155c-0000-7000-8000-000000000000")
        assert len(request_log.requests) == 2
    request_log.requests.clear()
    with Client(
        server.url, make_token("lkc"), max_retries=3, http_client=request_log.http_client()
    ) as stranger:
        with pytest.raises(AuthenticationError):
            stranger.list_projects()
        assert len(request_log.requests) == 1


def test_429_is_retried_after_retry_after_for_idempotent_requests_only(
    make_server, request_log: RequestLog
) -> None:
    # Two failed token checks per 5 s window, then further failures from this IP get 429
    # (valid tokens from the same IP keep working: the throttle holds back failures).
    server = make_server({"throttle": {"failed_token_checks": 2, "window_secs": 5}})
    stranger_token = make_token("lkc")
    with Client(server.url, stranger_token, max_retries=0) as stranger:
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                stranger.list_projects()
    with server.client(jwt_exchange=False) as admin:
        assert admin.me().username == "admin"

    with Client(
        server.url, stranger_token, jwt_exchange=False, http_client=request_log.http_client()
    ) as client:
        # A POST without an Idempotency-Key is not repeated: the error says how long to wait.
        with pytest.raises(RateLimitError) as err:
            client.create_project(unique("throttled"))
        assert (err.value.status, err.value.code) == (429, "rate_limited")
        assert err.value.retry_after is not None and 1 <= err.value.retry_after <= 5
        assert len(request_log.requests) == 1

        # A GET waits as long as Retry-After says, then is sent again (and now fails as
        # the unknown token it is, once the window is over).
        request_log.requests.clear()
        request_log.responses.clear()
        started = time.monotonic()
        with pytest.raises(AuthenticationError):
            client.me()
        waited = time.monotonic() - started
        statuses = [r.status_code for r in request_log.responses]
        assert statuses[0] == 429 and statuses[-1] == 401, statuses
        retry_after = float(request_log.responses[0].headers["retry-after"])
        assert waited >= retry_after * 0.9


def test_retry_after_beyond_the_limit_is_not_waited_for(
    make_server, request_log: RequestLog
) -> None:
    server = make_server({"throttle": {"failed_token_checks": 1, "window_secs": 120}})
    with Client(server.url, make_token("lkc"), max_retries=0) as stranger:
        with pytest.raises(AuthenticationError):
            stranger.list_projects()
    with Client(server.url, make_token("lkc"), http_client=request_log.http_client()) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as err:
            client.me()
        assert time.monotonic() - started < 5
        assert err.value.retry_after is not None and err.value.retry_after > 60
        assert len(request_log.requests) == 1
