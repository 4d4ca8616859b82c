"""Schemathesis hooks for tests/openapi/test_conformance.py (loaded via SCHEMATHESIS_HOOKS).

Schemathesis revokes, rotates and deletes whatever tokens it finds, the one it authenticates
with included; then every later request would be a 401 and test nothing. This auth provider
hands it a fresh admin token every few seconds instead: it signs in as the instance owner
(a console session, with the console's Origin as CSRF asks), lifts the token limits the run
may have lowered, and creates a personal token in Workspace 1.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import httpx
import schemathesis

URL = os.environ["LATCHKEY_ST_URL"]
USERNAME = os.environ.get("LATCHKEY_ST_USERNAME", "admin")
PASSWORD = os.environ["LATCHKEY_ST_PASSWORD"]
FALLBACK = os.environ["LATCHKEY_ST_TOKEN"]


def fresh_token() -> Optional[str]:
    with httpx.Client(base_url=URL, headers={"Origin": URL}, timeout=30) as http:
        if http.post("/api/v1/session", json={"username": USERNAME, "password": PASSWORD}).status_code != 200:
            return None
        me = http.get("/api/v1/me").json()
        http.patch("/api/v1/instance/settings", json={"max_active_tokens": None})
        http.patch(f"/api/v1/orgs/{me['org']['id']}/token-settings", json={"max_tokens_per_user": None})
        workspaces = http.get("/api/v1/workspaces").json()["items"]
        if not workspaces:
            created = http.post("/api/v1/workspaces", json={"name": "Conformance"})
            workspaces = [created.json()] if created.status_code == 201 else []
        for ws in workspaces:
            http.put(f"/api/v1/workspaces/{ws['id']}/members/{me['id']}", json={"role": "admin"})
            answer = http.post(
                f"/api/v1/workspaces/{ws['id']}/tokens",
                json={"name": "schemathesis", "type": "personal", "scopes": ["admin"]},
            )
            if answer.status_code == 201:
                return str(answer.json()["token"])
    return None


@schemathesis.auth(refresh_interval=3)
class FreshAdminToken:
    def get(self, case: Any, ctx: Any) -> str:
        return fresh_token() or FALLBACK

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
