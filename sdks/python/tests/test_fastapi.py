"""``latchkey.fastapi.require_token`` in a real FastAPI app, served by uvicorn on a random
port, that checks tokens with the real Latchkey server."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and the aliases below are local to the fixture.

import threading
import time
from typing import Annotated, Any, Dict, Iterator

import httpx
import pytest
from conftest import Server, make_token, skip_or_fail, unique

try:
    import uvicorn
    from fastapi import Depends, FastAPI
except ImportError:  # pragma: no cover - the test extra installs them
    FastAPI = None  # type: ignore[assignment,misc]

from latchkey import Client, Token

WS1 = "Workspace 1"


class ServedApp:
    """Serves ``app`` with uvicorn in a thread; requests go over real HTTP."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.http = httpx.Client(base_url=f"http://{host}:{port}", timeout=30)
        return self.http

    def __exit__(self, *exc: Any) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def app_client(server: Server) -> Iterator[httpx.Client]:
    if FastAPI is None:
        skip_or_fail("fastapi is not installed (pip install -e 'sdks/python[test]')")
    from latchkey.fastapi import TokenVerifier, require_token

    verifier = TokenVerifier(server.url)
    app = FastAPI()

    Reader = Annotated[Token, Depends(verifier.require(["projects:read"]))]
    Writer = Annotated[Token, Depends(verifier.require(["projects:write"]))]
    Personal = Annotated[Token, Depends(verifier.require(types=["personal"]))]
    Anyone = Annotated[Token, Depends(require_token(url=server.url))]

    @app.get("/reports")
    async def reports(caller: Reader) -> Any:
        return {
            "token_id": caller.id,
            "owner": caller.owner_id,
            "workspace": caller.workspace_name,
            "scopes": caller.scopes,
        }

    @app.post("/reports")
    async def write(caller: Writer) -> Any:
        return {"written_by": caller.owner_id}

    @app.get("/personal-only")
    async def personal(caller: Personal) -> Any:
        return {"type": caller.type}

    @app.get("/from-env")
    async def from_env(caller: Anyone) -> Any:
        return {"id": caller.id}

    with ServedApp(app) as client:
        yield client


def _bearer(secret: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_token_with_the_scope_reaches_the_handler_with_its_identity(
    server: Server, admin: Client, app_client: httpx.Client
) -> None:
    created = admin.tokens.create(WS1, unique("reader"), scopes=["projects:read"])
    answer = app_client.get("/reports", headers=_bearer(created.token))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "token_id": created.id,
        # The user id: an anonymous verify answer names no people (no username).
        "owner": admin.me().id,
        "workspace": WS1,
        "scopes": ["projects:read"],
    }
    # The other ways Latchkey accepts a token work here too.
    assert app_client.get("/reports", headers={"X-API-Key": created.token}).status_code == 200
    token_scheme = {"Authorization": f"Token {created.token}"}
    assert app_client.get("/reports", headers=token_scheme).status_code == 200
    # So does the access JWT a personal token is exchanged for.
    access = server.http("POST", "/api/v1/token/refresh", json={"refresh": created.token})
    assert access.status_code == 200, access.text
    jwt_answer = app_client.get("/reports", headers=_bearer(access.json()["access"]))
    assert jwt_answer.status_code == 200, jwt_answer.text
    assert jwt_answer.json()["token_id"] == created.id
    admin.tokens.delete(created.id)


def test_missing_and_bad_tokens_get_401_with_a_challenge(app_client: httpx.Client) -> None:
    answer = app_client.get("/reports")
    assert answer.status_code == 401
    assert answer.json()["detail"]["code"] == "unauthenticated"
    assert answer.headers["www-authenticate"].startswith("Bearer")

    for secret, reason in ((make_token(), "not_found"), ("lkp_typo", "bad_format")):
        answer = app_client.get("/reports", headers=_bearer(secret))
        assert answer.status_code == 401, answer.text
        assert answer.json()["detail"]["code"] == "invalid_token"
        challenge = answer.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge and reason in challenge


def test_missing_scope_or_type_gets_403(admin: Client, app_client: httpx.Client) -> None:
    reader = admin.tokens.create(WS1, unique("reader"), scopes=["projects:read"])
    answer = app_client.post("/reports", headers=_bearer(reader.token))
    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["code"] == "insufficient_scope"
    assert "projects:write" in answer.json()["detail"]["message"]
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="projects:write"' in challenge

    client_token = admin.tokens.create(WS1, unique("backend"), type="client")
    assert app_client.get("/personal-only", headers=_bearer(client_token.token)).status_code == 403
    ok = app_client.get("/personal-only", headers=_bearer(reader.token))
    assert ok.status_code == 200 and ok.json() == {"type": "personal"}
    admin.tokens.delete(reader.id)
    admin.tokens.delete(client_token.id)


def test_a_revoked_token_fails_on_the_next_request(admin: Client, app_client: httpx.Client) -> None:
    created = admin.tokens.create(WS1, unique("soon-revoked"))
    assert app_client.get("/from-env", headers=_bearer(created.token)).status_code == 200
    admin.tokens.revoke(created.id)
    answer = app_client.get("/from-env", headers=_bearer(created.token))
    assert answer.status_code == 401
    assert "revoked" in answer.headers["www-authenticate"]
    admin.tokens.delete(created.id)


def test_latchkey_unreachable_fails_closed() -> None:
    if FastAPI is None:
        skip_or_fail("fastapi is not installed (pip install -e 'sdks/python[test]')")
    from latchkey.fastapi import TokenVerifier

    app = FastAPI()
    verifier = TokenVerifier("http://127.0.0.1:9")  # nothing listens on the discard port

    @app.get("/")
    async def index(caller: Annotated[Token, Depends(verifier.require())]) -> Any:
        return {"id": caller.id}

    with ServedApp(app) as client:
        answer = client.get("/", headers=_bearer(make_token()))
    assert answer.status_code == 503
    assert answer.json()["detail"]["code"] == "unavailable"


def test_a_verifier_without_a_url_says_what_to_set() -> None:
    if FastAPI is None:
        skip_or_fail("fastapi is not installed (pip install -e 'sdks/python[test]')")
    from latchkey import ConfigurationError
    from latchkey.fastapi import TokenVerifier

    with pytest.raises(ConfigurationError, match="LATCHKEY_URL"):
        TokenVerifier()
