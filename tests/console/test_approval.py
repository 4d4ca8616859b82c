"""Approval (DESIGN.md §8): with admin tokens needing approval, an org admin's new admin
token is listed under **Pending approval** on API access with the Pending approval badge;
its creator gets no Approve/Deny; another org admin (here the owner) approves it with
**Approve <name>** (it works at once) or denies it with **Deny <name>** (confirmed; final)."""

from __future__ import annotations

from flows import cookie_header, create_user, seed_token
from harness import api_create_project, http

ADA = ("ada", "ada's long passphrase 1")


def approval_required_types(c) -> list[str]:
    headers = cookie_header(c)
    org = http("GET", f"{c.base}/api/v1/me", headers).json()["org"]["id"]
    reply = http("GET", f"{c.base}/api/v1/orgs/{org}/token-settings", headers)
    assert reply.status == 200, reply.text
    return reply.json()["approval_required_types"]


def require_approval_of_admin_tokens(c) -> None:
    """The owner ticks it in Access Token Settings (only owners see the fieldset)."""
    c.go("/organization/token-settings")
    c.check("Approval required: Admin tokens", True)
    c.press("Save")
    assert "Settings saved" in c.banner(), c.banner()
    assert approval_required_types(c) == ["admin"]


def test_only_owners_see_and_change_which_types_need_approval(server, admin, browsers):
    require_approval_of_admin_tokens(admin)
    # Unticking works the same way.
    admin.go("/organization/token-settings")
    admin.check("Approval required: Admin tokens", False)
    admin.press("Save")
    assert approval_required_types(admin) == []
    require_approval_of_admin_tokens(admin)

    # An org admin who is not an owner sees no such choice, and their Save keeps it.
    create_user(admin, ADA[0], ADA[1], role="admin")
    ada = browsers()
    ada.sign_in(*ADA)
    ada.go("/organization/token-settings")
    assert ada.has("checkbox", "Recoverable: Admin tokens")
    assert not ada.has("checkbox", "Approval required: Admin tokens")
    ada.press("Save")
    assert "Settings saved" in ada.banner(), ada.banner()
    assert approval_required_types(admin) == ["admin"]


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
