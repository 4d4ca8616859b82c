"""No secret in repr() or in a log line: not the client's token, not an access JWT, not a
created or rotated secret, not a password."""

from __future__ import annotations

import logging

import pytest
from conftest import Server, make_token, unique

from latchkey import APIError, AuthenticationError, Client


def test_no_secret_in_reprs_or_log_lines(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything: latchkey, httpx, httpcore
    secrets = [server.admin_token, server.admin_password]
    errors: list = []
    with Client(server.url, server.admin_token, max_retries=0) as client:
        client.me()
        access = client._core.auth._access
        if access:
            secrets.append(access)
        created = client.tokens.create("Workspace 1", unique("secret"), type="client")
        rotated = client.tokens.rotate(created.id, 0, unique("key"))
        secrets += [created.token, rotated.token]
        client.verify(rotated.token)
        texts = [
            repr(client),
            str(client),
            repr(created),
            str(created),
            repr(rotated),
            repr(client.tokens.get(created.id)),
        ]
        try:
            client.tokens.create("Workspace 1", "")
        except APIError as exc:
            errors.append(exc)
        client.tokens.delete(created.id)

    with Client(server.url, anonymous=True) as console:
        console.sign_in("admin", server.admin_password)
        secrets.append(console._core.auth._session)
        texts.append(repr(console))
        console.sign_out()
        try:
            console.sign_in("admin", "wrong " + server.admin_password)
        except AuthenticationError as exc:
            errors.append(exc)

    with Client(server.url, make_token()) as bad:
        secrets.append(bad._core.auth._token)
        try:
            bad.me()
        except AuthenticationError as exc:
            errors.append(exc)

    texts += [repr(e) for e in errors] + [str(e) for e in errors]
    records = caplog.records
    assert records, "expected log records to check"
    lines = [r.getMessage() for r in records] + [caplog.text]
    for secret in filter(None, secrets):
        for text in texts + lines:
            assert secret not in text


def test_the_server_logs_no_secret(server: Server) -> None:
    # The server's own log lines (stderr) must not hold the preset token either.
    with Client(server.url, make_token()) as bad:
        with pytest.raises(AuthenticationError):
            bad.me()
    assert server.admin_token not in server.log_text
    assert server.admin_password not in server.log_text
