"""What org admins do and what members see: users, members, token settings, the audit log."""

from __future__ import annotations

import json

from flows import add_member, cookie_header, create_token, create_user, open_form, open_workspace_tokens, set_expiry
from harness import api_create_project, http

MIA_PASSWORD = "mia's long passphrase 1"


def test_a_member_sees_only_what_the_service_lets_them(server, admin, browsers):
    create_user(admin, "mia", MIA_PASSWORD)
    add_member(admin, "Workspace 1", "mia")
    open_workspace_tokens(admin)
    create_token(admin, "deploy-admin", token_type="admin")
    create_token(admin, "web-client", token_type="client")

    mia = browsers()
    mia.sign_in("mia", MIA_PASSWORD)
    assert mia.heading() == "Workspaces"
    assert mia.has("link", "Workspace 1")
    assert not mia.has("link", "Organization")
    assert not mia.has("link", "API access")
    assert not mia.has("button", "New workspace")
    for path in ("/organization", "/organization/users", "/organization/token-settings",
                 "/organization/audit", "/api-access"):
        mia.go(path)
        assert mia.heading() == "Not allowed", path
    forbidden = http("GET", server.url + "/organization/users", cookie_header(mia))
    assert forbidden.status == 403 and "text/html" in forbidden.headers["content-type"]

    open_workspace_tokens(mia)
    open_form(mia)
    assert mia.options("Type") == [("personal", "Personal (yours, in this workspace)")]
    listed = mia.rows()
    assert "web-client" in listed
    assert "deploy-admin" not in listed
    assert "Initial admin token" not in listed
    assert not mia.has("button", "Revoke web-client")

    secret = create_token(mia, "mia-cli")
    assert api_create_project(server.url, secret).status == 201
    assert "mia" in mia.row("mia-cli").text

    # Members page: a member reads it but cannot manage it.
    mia.follow("Members")
    assert mia.heading() == "Members"
    assert not mia.has("button", "Add member")

    # The admin changes mia's role to viewer: she no longer sees the workspace's tokens nor
    # creates any, but still sees her own (one visibility rule, docs/decisions.md).
    admin.go("/workspaces")
    admin.follow("Workspace 1")
    admin.follow("Settings")
    admin.follow("Members")
    row = admin.row("mia")
    admin.choose("Role of mia", "viewer")
    admin.press("Change role of mia")
    assert admin.banner() == "Role of “mia” changed."
    assert "viewer" in admin.row("mia").text
    open_workspace_tokens(mia)
    listed = mia.rows()
    assert "mia-cli" in listed
    assert "web-client" not in listed
    assert "You cannot create tokens here" in mia.text()
    assert not mia.has("field", "Token Name")

    admin.press("Remove mia")
    admin.confirm("Remove")
    assert "Member removed" in admin.banner()
    assert "mia" not in admin.rows()
    mia.go("/workspaces")
    assert not mia.has("link", "Workspace 1")
    del row


def test_switching_a_type_off_and_on(server, admin, browsers):
    c = admin
    open_workspace_tokens(c)
    secret = create_token(c, "switchable")
    assert api_create_project(server.url, secret).status == 201
    stale_form = browsers()
    stale_form.sign_in("admin")
    open_workspace_tokens(stale_form)
    open_form(stale_form)

    c.follow("Organization")
    c.follow("Access Token Settings")
    assert c.heading() == "Access Token Settings"
    for label in ("Personal access tokens", "Legacy tokens", "Client tokens", "Frontend tokens",
                  "Admin tokens"):
        assert c.find("checkbox", label).is_selected(), label
    assert c.field("Personal access token TTL (days)").get_attribute("value") == ""
    assert c.field("Max tokens per user").get_attribute("value") == "10"
    assert c.field("Who may create tokens").get_attribute("value") == "members"
    c.check("Personal access tokens", False)
    c.press("Save")
    assert "Settings saved" in c.banner()
    assert not c.find("checkbox", "Personal access tokens").is_selected()

    # From the next request on: the token fails, and the type is no longer offered.
    assert api_create_project(server.url, secret).status == 401
    open_workspace_tokens(c)
    open_form(c)
    assert "personal" not in [v for v, _ in c.options("Type")]
    assert "Type disabled" in c.row("switchable").text
    # A form loaded before the change gets a readable refusal, not JSON.
    stale_form.fill("Token Name", "too-late")
    stale_form.press("Create Token")
    assert stale_form.banner() == "Not allowed: personal tokens are disabled in this organization."

    c.go("/organization/token-settings")
    c.check("Personal access tokens", True)
    c.press("Save")
    assert api_create_project(server.url, secret).status == 201


def test_limits_and_ttl_are_enforced_with_messages(server, admin):
    c = admin
    c.go("/organization/token-settings")
    c.fill("Max tokens per user", "2")
    c.fill("Personal access token TTL (days)", "30")
    c.press("Save")
    assert "Settings saved" in c.banner()
    open_workspace_tokens(c)
    open_form(c)
    assert "at most 30 days" in c.text()
    # Presets beyond the TTL are not offered for personal tokens.
    personal_presets = c.driver.execute_script(
        "return [...document.querySelectorAll('#token-expiry option')]"
        ".filter(o => !o.disabled).map(o => o.value)")
    assert personal_presets == ["7", "30", "custom"], personal_presets
    create_token(c, "second")  # the bootstrap token is the first
    open_form(c)
    c.fill("Token Name", "third")
    c.press("Create Token")
    assert c.no_dialog()
    assert c.banner().startswith("Limit reached: Max tokens per user is 2."), c.banner()
    c.press("Revoke second")
    c.confirm("Revoke")
    open_form(c)
    c.fill("Token Name", "third")
    set_expiry(c, "31")
    c.press("Create Token")
    assert "longest lifetime" in c.banner()
    c.fill("Expires in (days)", "30")
    c.press("Create Token")
    c.dialog()


def test_deactivating_a_user_stops_their_tokens_and_session(server, admin, browsers):
    create_user(admin, "bob", "bob's long passphrase 1")
    add_member(admin, "Workspace 1", "bob")
    bob = browsers()
    bob.sign_in("bob", "bob's long passphrase 1")
    open_workspace_tokens(bob)
    secret = create_token(bob, "bob-token")
    assert api_create_project(server.url, secret).status == 201

    admin.go("/organization/users")
    assert not admin.has("button", "Deactivate admin")  # nobody deactivates themselves
    admin.press("Deactivate bob")
    admin.confirm("Deactivate")
    assert admin.banner() == "User “bob” deactivated. Their sessions and tokens stopped working."
    assert "Deactivated" in admin.row("bob").text
    assert api_create_project(server.url, secret).status == 401
    bob.go("/account")
    assert bob.path.startswith("/login")

    admin.press("Reactivate bob")
    assert admin.banner() == "User “bob” reactivated."
    assert api_create_project(server.url, secret).status == 201
    bob.sign_in("bob", "bob's long passphrase 1")
    assert bob.heading() == "Workspaces"

    admin.choose("Role of bob", "admin")
    admin.press("Change role of bob")
    assert "admin" in admin.row("bob").text


def test_users_page_reports_bad_input(server, admin):
    admin.go("/organization/users")
    admin.fill("Username", "has spaces")
    admin.fill("Password", "x")
    admin.press("Create user")
    assert admin.banner().startswith("Username:"), admin.banner()
    assert admin.field("Username").get_attribute("value") == "has spaces"


def test_instance_settings_and_audit_log(server, admin):
    c = admin
    c.follow("Organization")
    c.follow("Instance Settings")
    assert c.heading() == "Instance Settings"
    assert c.field("Default token lifetime (days)").get_attribute("value") == "270"
    c.fill("Max active tokens", "150")
    c.press("Save")
    assert "Settings saved" in c.banner()
    settings = http("GET", server.url + "/api/v1/instance/settings", cookie_header(c)).json()
    assert settings["max_active_tokens"] == 150

    open_workspace_tokens(c)
    create_token(c, "audited")
    c.press("Revoke audited")
    c.confirm("Revoke")

    c.follow("Organization")
    c.follow("Audit Log")
    assert c.heading() == "Audit Log"
    text = c.text()
    assert "token.revoked" in text and "token.created" in text and "instance.settings_changed" in text
    c.fill("Action", "token.revoked")
    c.press("Filter")
    assert "action=token.revoked" in c.path
    actions = [r for r in c.rows()]
    assert actions and all(a == "token.revoked" for a in actions)
    assert "audited" in c.text()

    workspace = next(v for v, label in c.options("Workspace") if label == "Workspace 1")
    c.go("/organization/audit?limit=1")
    c.choose("Workspace", workspace)
    c.fill("Action", "")
    c.press("Filter")
    assert "workspace=" in c.path
    # Pagination: 50 a page; make sure a next page link keeps the filters.
    for i in range(51):
        http(
            "POST",
            server.url + "/api/v1/workspaces/Workspace%201/projects",
            {**cookie_header(c), "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"},
            json.dumps({"name": f"p{i}"}),
        )
    c.driver.refresh()
    c.wait_ready()
    c.follow("Next page")
    assert "cursor=" in c.path and "workspace=" in c.path
    assert c.rows()


IDLE, CAP = "Revoke tokens unused for (days)", "Maximum token lifetime (days)"


def save_lifetime_policies(c, idle: str, cap: str) -> None:
    """Fills both fields, saves, and checks the reloaded form shows what was saved."""
    c.go("/organization/token-settings")
    c.fill(IDLE, idle)
    c.fill(CAP, cap)
    c.press("Save")
    assert "Settings saved" in c.banner()
    c.go("/organization/token-settings")
    assert (c.field(IDLE).get_attribute("value"), c.field(CAP).get_attribute("value")) == (idle, cap)


def test_lifetime_policies_are_set_in_the_form_and_hold_at_creation(server, admin):
    c = admin
    c.go("/organization/token-settings")
    assert (c.field(IDLE).get_attribute("value"), c.field(CAP).get_attribute("value")) == ("", "")
    save_lifetime_policies(c, "90", "30")

    # The cap holds for every type at creation, with the policy's message; the form's
    # personal lifetime (instance default 270 days) is shortened to it.
    open_workspace_tokens(c)
    open_form(c)
    assert "Personal tokens live at most 30 days" in c.text()
    c.fill("Token Name", "too-long")
    c.choose("Type", "client")
    set_expiry(c, "31")
    c.press("Create Token")
    assert "longest lifetime" in c.banner(), c.banner()
    c.fill("Expires in (days)", "30")
    c.press("Create Token")
    c.dialog()

    # A value the server refuses (past the browser's own check) is named; nothing changes.
    c.go("/organization/token-settings")
    c.driver.execute_script("document.getElementById('max-lifetime').removeAttribute('min')")
    c.fill(CAP, "0")
    c.press("Save")
    assert c.banner().startswith("Maximum token lifetime (days):"), c.banner()
    assert c.field(CAP).get_attribute("value") == "0"
    c.go("/organization/token-settings")
    assert c.field(CAP).get_attribute("value") == "30"

    # Emptied: off.
    save_lifetime_policies(c, "", "")
