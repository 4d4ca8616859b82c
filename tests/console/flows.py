"""Steps the console tests share, each done the way a person does it: by names on the page."""

from __future__ import annotations

import json

from harness import TOKEN_RE, Console, http


def open_workspace_tokens(c: Console, workspace: str = "Workspace 1") -> None:
    c.go("/workspaces")
    c.follow(workspace)
    assert c.heading() == workspace
    c.follow("Settings")
    c.follow("API Access Tokens")
    assert c.heading() == "API Access Tokens"


def read_dialog_secret(c: Console) -> str:
    """Reads the secret from the show-once dialog, checks the dialog, and closes it."""
    dialog = c.dialog()
    secret = c.field("Token", dialog).get_attribute("value")
    assert TOKEN_RE.match(secret), secret
    assert c.field("Token", dialog).get_attribute("readonly") is not None
    assert "will not be shown again" in dialog.text
    assert secret not in c.driver.current_url
    c.press("Done", dialog)
    assert c.no_dialog()
    assert secret not in c.driver.page_source
    return secret


PRESETS = ("7", "30", "60", "90")


def open_form(c: Console) -> None:
    """Opens the create form with the page's New token button, unless it is open."""
    if c.has("field", "Token Name"):
        return
    for name in ("New token", "New API token"):
        if c.has("button", name):
            c.press(name)
            break
    assert c.has("field", "Token Name"), "no create form on " + c.path


def set_expiry(c: Console, days: str) -> None:
    """A preset when there is one for `days` ("none": No expiration), else Custom."""
    if days in PRESETS or days == "none":
        c.choose("Expiration", days)
    else:
        c.choose("Expiration", "custom")
        c.fill("Expires in (days)", days)


def create_token(
    c: Console,
    name: str,
    token_type: str | None = None,
    expires: str | None = None,
    environment: str | None = None,
    workspace: str | None = None,
) -> str:
    """Opens the create form on the current page, fills it, submits it and returns the
    secret."""
    open_form(c)
    c.fill("Token Name", name)
    if token_type:
        c.choose("Type", token_type)
    if workspace:
        c.choose("Workspace", workspace)
    if expires:
        set_expiry(c, expires)
    if environment:
        c.fill("Environment", environment)
    c.press("Create Token")
    return read_dialog_secret(c)


def create_user(admin: Console, username: str, password: str, role: str = "member") -> None:
    admin.go("/organization/users")
    admin.fill("Username", username)
    admin.fill("Password", password)
    admin.choose("Role", role)
    admin.press("Create user")
    assert f"User “{username}” created." in admin.banner(), admin.banner()


def add_member(admin: Console, workspace: str, username: str, role: str = "member") -> None:
    admin.go("/workspaces")
    admin.follow(workspace)
    admin.follow("Settings")
    admin.follow("Members")
    admin.fill("Username", username)
    admin.choose("Role", role)
    admin.press("Add member")
    assert f"Member “{username}” added." in admin.banner(), admin.banner()


def cookie_header(c: Console) -> dict[str, str]:
    return {"Cookie": f"latchkey_session={c.session_cookie()}"}


def seed_token(c: Console, body: dict, workspace: str = "Workspace%201") -> dict:
    """Creates a token through the API with the browser's session (as the console's own
    page would call it) and returns the API's answer (id, token, …)."""
    reply = http(
        "POST",
        f"{c.base}/api/v1/workspaces/{workspace}/tokens",
        {**cookie_header(c), "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"},
        json.dumps(body),
    )
    assert reply.status == 201, reply.text
    return reply.json()
