"""FastAPI and Starlette: a dependency that checks the request's token through Latchkey.

.. code-block:: python

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from latchkey import Token
    from latchkey.fastapi import require_token

    app = FastAPI()
    Reader = Annotated[Token, Depends(require_token(scopes=["projects:read"]))]

    @app.get("/reports")
    async def reports(caller: Reader):
        return {"owner": caller.owner_id, "workspace": caller.workspace_name}

The token is taken from ``Authorization: Bearer …`` (a token or an access JWT),
``Authorization: Token …`` or ``X-API-Key`` (add more names with ``api_key_headers``), as
Latchkey itself reads them, and checked with ``POST /api/v1/tokens/verify`` on every request:
a revoked token fails at once, nothing is cached. The handler gets the token's metadata
(:class:`~latchkey.Token`: id, type, owner, workspace, scopes, projects, environment).

Answers, with RFC 6750 ``WWW-Authenticate``:

* no token → 401 ``unauthenticated``; a token Latchkey refuses → 401 ``invalid_token`` (the
  reason, e.g. ``revoked``, in ``error_description``);
* a valid token without every scope in ``scopes`` (or of a type not in ``types``) → 403
  ``insufficient_scope``;
* Latchkey unreachable or failing → 503 ``unavailable`` (fail closed, never let through).

The errors are ``HTTPException`` with ``detail={"code": …, "message": …}``, so the
application's own exception handlers shape them. Needs ``pip install latchkey[fastapi]``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Dict, FrozenSet, Mapping, Optional, Sequence

from fastapi import HTTPException, Request

from ._async.client import AsyncClient
from ._exceptions import APIConnectionError, APIError
from ._models import Scope, Token, TokenType

__all__ = ["TokenVerifier", "require_token", "token_from_headers"]

DEFAULT_API_KEY_HEADERS = ("x-api-key",)


def token_from_headers(
    headers: Mapping[str, str], api_key_headers: Sequence[str] = DEFAULT_API_KEY_HEADERS
) -> Optional[str]:
    """The credential a request presents, or ``None`` (``headers`` with lower-case names,
    as Starlette's are)."""
    authorization = str(headers.get("authorization", ""))
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    for name in api_key_headers:
        value = str(headers.get(name, "")).strip()
        if value:
            return value
    return None


def _challenge(error: Optional[str] = None, description: str = "", scope: str = "") -> str:
    parts = ['Bearer realm="latchkey"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return ", ".join(parts)


def _refuse(status: int, code: str, message: str, challenge: Optional[str]) -> HTTPException:
    headers: Dict[str, str] = {}
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    return HTTPException(status, detail={"code": code, "message": message}, headers=headers)


class TokenVerifier:
    """Checks tokens against one Latchkey server (``url``, default ``LATCHKEY_URL``).

    It keeps one anonymous :class:`~latchkey.AsyncClient` per event loop (verification
    needs no credential), so it works under any ASGI server and with ``TestClient``.
    ``client`` uses your own client instead (it must live on the app's event loop).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        client: Optional[AsyncClient] = None,
        api_key_headers: Sequence[str] = DEFAULT_API_KEY_HEADERS,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._client = client
        self._timeout = timeout
        self.api_key_headers = tuple(h.lower() for h in api_key_headers)
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient]" = (
            weakref.WeakKeyDictionary()
        )
        if client is None:
            # Fails now, not at the first request, when there is no URL.
            AsyncClient(url, anonymous=True)

    def _client_for_loop(self) -> AsyncClient:
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncClient(self._url, anonymous=True, timeout=self._timeout)
            self._clients[loop] = client
        return client

    async def verify(
        self,
        request: Request,
        scopes: FrozenSet[str] = frozenset(),
        types: Optional[FrozenSet[str]] = None,
    ) -> Token:
        """The request's token, checked; raises ``HTTPException`` otherwise."""
        secret = token_from_headers(request.headers, self.api_key_headers)
        if secret is None:
            raise _refuse(401, "unauthenticated", "an API token is required", _challenge())
        try:
            result = await self._client_for_loop().verify(secret)
        except (APIConnectionError, APIError) as exc:
            raise _refuse(
                503, "unavailable", f"cannot check the token with Latchkey: {exc}", None
            ) from None
        if not result.valid or result.token is None:
            reason = result.reason or "invalid"
            raise _refuse(
                401,
                "invalid_token",
                f"the token is not valid ({reason})",
                _challenge("invalid_token", reason),
            )
        token = result.token
        if types is not None and token.type not in types:
            wanted = " ".join(sorted(types))
            raise _refuse(
                403,
                "insufficient_scope",
                f"a {token.type} token cannot call this; allowed types: {wanted}",
                _challenge("insufficient_scope", "token type not allowed"),
            )
        missing = sorted(scopes - set(token.scopes))
        if missing:
            needed = " ".join(sorted(scopes))
            raise _refuse(
                403,
                "insufficient_scope",
                f"the token lacks the scopes {', '.join(missing)}",
                _challenge("insufficient_scope", "missing scopes", needed),
            )
        return token

    def require(
        self,
        scopes: Optional[Sequence[Scope]] = None,
        *,
        types: Optional[Sequence[TokenType]] = None,
    ) -> "_Dependency":
        """A FastAPI dependency that answers the request's checked :class:`Token`."""
        return _Dependency(self, frozenset(scopes or ()), frozenset(types) if types else None)

    async def aclose(self) -> None:
        """Closes the clients this verifier made."""
        for client in list(self._clients.values()):
            await client.aclose()
        self._clients.clear()


class _Dependency:
    """``Depends(...)`` target; a class so FastAPI sees only ``request`` in its signature."""

    def __init__(
        self, verifier: TokenVerifier, scopes: FrozenSet[str], types: Optional[FrozenSet[str]]
    ) -> None:
        self.verifier = verifier
        self.scopes = scopes
        self.types = types

    async def __call__(self, request: Request) -> Token:
        return await self.verifier.verify(request, self.scopes, self.types)


_default_verifiers: Dict[Optional[str], TokenVerifier] = {}


def require_token(
    scopes: Optional[Sequence[Scope]] = None,
    *,
    types: Optional[Sequence[TokenType]] = None,
    url: Optional[str] = None,
    verifier: Optional[TokenVerifier] = None,
) -> _Dependency:
    """A dependency that checks the request's token and hands the handler its metadata.

    ``scopes``: all required; ``types``: the token types allowed (default any). The server
    is ``verifier``'s, else ``url``, else ``LATCHKEY_URL`` (one shared verifier per URL).
    """
    if verifier is None:
        verifier = _default_verifiers.get(url)
        if verifier is None:
            verifier = _default_verifiers[url] = TokenVerifier(url)
    return verifier.require(scopes, types=types)
