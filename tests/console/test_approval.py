"""Approval (DESIGN.md §8): with admin tokens needing approval, an org admin's new admin
token is listed under **Pending approval** on API access with the Pending approval badge;
its creator gets no Approve/Deny; another org admin (here the owner) approves it with
**Approve <name>** (it works at once) or denies it with **Deny <name>** (confirmed; final)."""

from __future__ import annotations

import json

from flows import cookie_header, create_user, seed_token
from harness import api_create_project, http

ADA = ("ada", "ada's long passphrase 1")


def require_approval_of_admin_tokens(c) -> None:
    headers = {**cookie_header(c), "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
    org = http("GET", f"{c.base}/api/v1/me", headers).json()["org"]["id"]
    reply = http(
        "PATCH",
        f"{c.base}/api/v1/orgs/{org}/token-settings",
        headers,
        json.dumps({"approval_required_types": ["admin"]}),
    )
    assert reply.status == 200, reply.text


def test_pending_tokens_are_approved_or_denied_by_another_org_admin(server, admin, browsers):
    require_approval_of_admin_tokens(admin)
    create_user(admin, ADA[0], ADA[1], role="admin")
    ada = browsers()
    ada.sign_in(*ADA)
    deploy = seed_token(ada, {"name": "deploy", "type": "admin"})
    other = seed_token(ada, {"name": "other", "type": "admin"})
    assert deploy["state"] == other["state"] == "pending"
    assert api_create_project(server.url, deploy["token"]).status == 401

    # Its creator sees it waiting, with no way to approve it.
    ada.go("/api-access")
    assert ada.has("heading", "Pending approval")
    assert "Pending approval" in ada.row("deploy").text
    assert not ada.has("button", "Approve deploy")
    assert not ada.has("button", "Deny deploy")

    # Another org admin approves: it works at once.
    admin.go("/api-access")
    assert admin.has("heading", "Pending approval")
    assert admin.axe() == [], admin.axe()
    admin.press("Approve deploy")
    assert "approved" in admin.banner(), admin.banner()
    assert api_create_project(server.url, deploy["token"]).status == 201

    # Deny asks first, then is final.
    admin.press("Deny other")
    admin.confirm("Deny")
    assert "denied" in admin.banner(), admin.banner()
    assert api_create_project(server.url, other["token"]).status == 401
    assert not admin.has("heading", "Pending approval")
    assert not admin.has("button", "Approve other")
    assert "Denied" in admin.row("other").text
