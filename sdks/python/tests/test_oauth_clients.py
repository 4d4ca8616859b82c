"""A standard OAuth library against the real binary: authlib (the client most Python
resource servers use) discovers Latchkey through its RFC 8414 metadata and introspects
(RFC 7662) and revokes (RFC 7009) tokens, authenticating as an OAuth client with
``client_secret_basic`` and with ``client_secret_post`` (client id = the calling token's
id, client secret = the token itself). Bad client credentials get the RFC 6749 §5.2
answer authlib understands.
"""

from __future__ import annotations

from typing import Any, Dict
from urllib.parse import urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from conftest import Server, make_token, unique

WS1 = "Workspace 1"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def metadata(server: Server) -> Dict[str, Any]:
    response = httpx.get(server.url + "/.well-known/oauth-authorization-server", timeout=30)
    assert response.status_code == 200, response.text
    data: Dict[str, Any] = response.json()
    return data


def local(server: Server, url: str) -> str:
    """An endpoint from the metadata, on the address the test server listens on (the
    metadata uses the configured public URL)."""
    return server.url + urlsplit(url).path


def test_metadata_passes_authlibs_checks_for_what_latchkey_serves(server: Server) -> None:
    meta = AuthorizationServerMetadata(metadata(server))
    # authlib insists on https for these (RFC 8414 says so); the test server is plain
    # http on loopback, so the scheme is swapped before its checks.
    secure = AuthorizationServerMetadata(
        {
            k: v.replace("http://", "https://", 1) if isinstance(v, str) else v
            for k, v in meta.items()
        }
    )
    for check in [
        "issuer",
        "jwks_uri",
        "introspection_endpoint",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint",
        "revocation_endpoint_auth_methods_supported",
        "token_endpoint_auth_methods_supported",
        "scopes_supported",
        "grant_types_supported",
        "service_documentation",
    ]:
        getattr(secure, f"validate_{check}")()
    assert meta.introspection_endpoint_auth_methods_supported == AUTH_METHODS
    assert meta.revocation_endpoint_auth_methods_supported == AUTH_METHODS
    assert "introspect" in meta.scopes_supported
    keys = httpx.get(local(server, meta.jwks_uri), timeout=30).json()
    assert keys["keys"], keys


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_authlib_introspects_and_revokes_as_an_oauth_client(
    admin: Any, server: Server, method: str
) -> None:
    caller = admin.tokens.create(
        WS1, unique("resource-server"), type="client", scopes=["introspect"]
    )
    target = admin.tokens.create(WS1, unique("target"), type="client")
    meta = metadata(server)
    client = OAuth2Client(
        client_id=caller.id,
        client_secret=caller.token,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
    )
    with client:
        answer = client.introspect_token(
            local(server, meta["introspection_endpoint"]),
            token=target.token,
            token_type_hint="access_token",
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["active"] is True
        assert body["client_id"] == target.id
        assert body["latchkey_type"] == "client"
        assert body["token_type"] == "Bearer"
        # The request really carried the method asked for.
        sent = answer.request
        if method == "client_secret_basic":
            assert sent.headers["authorization"].startswith("Basic ")
            assert b"client_secret" not in sent.content
        else:
            assert "authorization" not in sent.headers
            assert b"client_secret=" in sent.content

        unknown = client.introspect_token(
            local(server, meta["introspection_endpoint"]), token=make_token()
        )
        assert unknown.status_code == 200
        assert unknown.json() == {"active": False}

        # RFC 7009: the client revokes itself (a token may always revoke itself).
        revoked = client.revoke_token(
            local(server, meta["revocation_endpoint"]), token=caller.token
        )
        assert revoked.status_code == 200, revoked.text
    assert admin.tokens.get(caller.id).state == "revoked"


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_bad_client_credentials_get_invalid_client(admin: Any, server: Server, method: str) -> None:
    caller = admin.tokens.create(
        WS1, unique("resource-server"), type="client", scopes=["introspect"]
    )
    target = admin.tokens.create(WS1, unique("target"), type="client")
    meta = metadata(server)
    for client_id, secret in [
        (caller.id, make_token()),  # a made-up secret
        (target.id, caller.token),  # someone else's id
    ]:
        with OAuth2Client(
            client_id=client_id,
            client_secret=secret,
            revocation_endpoint_auth_method=method,
        ) as client:
            for endpoint in ["introspection_endpoint", "revocation_endpoint"]:
                call = (
                    client.introspect_token if endpoint.startswith("intro") else client.revoke_token
                )
                answer = call(local(server, meta[endpoint]), token=target.token)
                assert answer.status_code == 401, answer.text
                assert answer.json()["error"] == "invalid_client"
                assert answer.headers["www-authenticate"].startswith('Basic realm="latchkey"')
    assert admin.tokens.get(target.id).state == "active", "nothing was revoked"
