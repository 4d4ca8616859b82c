"""Lifecycle events end to end, checked with independent libraries: deliveries verified by
the Standard Webhooks reference library (``standardwebhooks``) at a real HTTP receiver on
loopback (a tampered body and an old timestamp fail), owner notices received by a real SMTP
server on loopback (``aiosmtpd``), the SDK's ``webhooks`` resource, and the
``TokenExpiringWarning`` for a token that expires within 7 days."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from latchkey import Client, TokenExpiringWarning

standardwebhooks = pytest.importorskip("standardwebhooks")
aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

DEADLINE = 20.0


def eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (headers and raw body)."""

    def __init__(self) -> None:
        self.got: List[Tuple[Dict[str, str], bytes]] = []
        received = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of_type(self, event_type: str) -> List[Tuple[Dict[str, str], bytes]]:
        return [(h, b) for h, b in list(self.got) if json.loads(b)["type"] == event_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd's handler: keeps every message."""

    def __init__(self) -> None:
        self.messages: List[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp() -> Iterator[Tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def test_deliveries_verify_with_the_reference_library_and_owners_get_email(
    make_server: Callable[..., Any], receiver: Receiver, smtp: Tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    server = make_server(
        {
            "webhooks": {"allow_private_addresses": True, "poll_interval_ms": 50},
            "smtp": {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from": "Latchkey <latchkey@example.com>",
            },
        }
    )
    admin = server.client()
    created = admin.webhooks.create(
        receiver.url, ["token.created", "token.revoked"], description="ci alerts"
    )
    assert created.secret.startswith("whsec_")
    assert "secret" not in repr(created)
    assert [w.id for w in admin.webhooks.list()] == [created.webhook.id]

    owner = admin.users.create(
        "webhook-owner", "owner password 123", "member", email="owner@example.com"
    )
    admin.members.put("Workspace 1", owner.id, "member")
    token = admin.tokens.create("Workspace 1", "ci-deploy", owner_id=owner.id)
    admin.tokens.revoke(token.id)

    eventually("token.created and token.revoked", lambda: len(receiver.got) >= 2)
    hook = standardwebhooks.Webhook(created.secret)
    for headers, body in receiver.got:
        payload = hook.verify(body, headers)
        assert payload["data"]["token"]["id"] == token.id
        assert payload["data"]["token"]["name"] == "ci-deploy"
        assert token.token not in body.decode()
    headers, body = receiver.of_type("token.revoked")[0]
    # A tampered body fails.
    tampered = body.replace(b"ci-deploy", b"ci-deplox")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        hook.verify(tampered, headers)
    # The same genuine message replayed ten minutes later fails: its timestamp is too old.
    real_datetime = datetime

    class Later(real_datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real_datetime.now(tz=tz) + timedelta(minutes=10)

    import standardwebhooks.webhooks as module

    original = module.datetime
    module.datetime = Later  # type: ignore[misc]
    try:
        with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
            hook.verify(body, headers)
    finally:
        module.datetime = original  # type: ignore[misc]
    # Another endpoint's secret does not verify it.
    other = standardwebhooks.Webhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        other.verify(body, headers)

    # The deliveries list shows each with its attempt.
    deliveries = list(admin.webhooks.deliveries(created.webhook.id))
    assert {d.event_type for d in deliveries} == {"token.created", "token.revoked"}
    eventually(
        "both delivered",
        lambda: all(
            d.state == "delivered" and d.attempts == 1 and d.last_status == 204
            for d in admin.webhooks.deliveries(created.webhook.id)
        ),
    )

    # The owner was told by email that an admin revoked the token; creation sends none.
    eventually("the revocation email", lambda: len(mailbox.messages) >= 1)
    message = mailbox.messages[0]
    assert message["To"] == "owner@example.com"
    assert "revoked by an administrator" in message["Subject"]
    assert "ci-deploy" in message["Subject"]
    assert token.token not in message.as_string()
    assert len(mailbox.messages) == 1

    # A leak report emails the owner too.
    leaked = admin.tokens.create("Workspace 1", "leaky", owner_id=owner.id)
    with Client(server.url, anonymous=True) as anonymous:
        anonymous.report_leaked([leaked.token])
    eventually("the leak email", lambda: len(mailbox.messages) >= 2)
    assert "leaked" in mailbox.messages[1]["Subject"]

    # Redeliver: the same webhook-id again.
    first = next(d for d in deliveries if d.event_type == "token.created")
    again = admin.webhooks.redeliver(created.webhook.id, first.id)
    assert again.event_id == first.event_id

    def created_of_ci_deploy() -> List[str]:
        return [
            h["webhook-id"]
            for h, b in receiver.of_type("token.created")
            if json.loads(b)["data"]["token"]["id"] == token.id
        ]

    eventually("the redelivery", lambda: len(created_of_ci_deploy()) == 2)
    assert set(created_of_ci_deploy()) == {first.event_id}
    admin.webhooks.delete(created.webhook.id)
    admin.close()


def test_an_expiring_token_warns_once(make_server: Callable[..., Any]) -> None:
    server = make_server()
    admin = server.client()
    soon = admin.tokens.create("Workspace 1", "short", type="client", expires_in_days=3)
    later = admin.tokens.create("Workspace 1", "long", type="client", expires_in_days=30)
    with server.client(later.token) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error", TokenExpiringWarning)
            client.list_projects()
    with server.client(soon.token) as client:
        with pytest.warns(TokenExpiringWarning, match="expires") as caught:
            client.list_projects()
            client.list_projects()
        assert len([w for w in caught if w.category is TokenExpiringWarning]) == 1
        assert client.token_expiration is not None
        left = client.token_expiration - datetime.now(timezone.utc)
        assert timedelta(days=2) < left <= timedelta(days=3)
    admin.close()
