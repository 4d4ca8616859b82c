"""Recoverable secrets in the console (DESIGN.md §8 "Recoverable secrets"): an owner turns
a type recoverable in Access Token Settings; Reveal on a row shows the secret again in the
secret dialog with Copy to Clipboard (and Done takes it out of the page); the Legacy Token
section's Copy puts the secret on the clipboard without it entering the page (Unleash's
copy button); every reveal is audited and throttled; a personal token's secret goes to its
owner only, and a reveal without the page's CSRF proof is refused."""

from __future__ import annotations

import json
import urllib.parse

from flows import add_member, cookie_header, create_token, create_user, open_workspace_tokens, read_dialog_secret
from flows import seed_token
from harness import TOKEN_RE, Console, http, wait_for

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
PASSWORD = "member password 1"


def api(c: Console, method: str, path: str, body: dict | None = None):
    headers = {**cookie_header(c), "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    return http(method, c.base + path, headers, json.dumps(body if body is not None else {}))


def make_recoverable(c: Console, *labels: str) -> None:
    c.go("/organization/token-settings")
    for label in labels:
        c.check(f"Recoverable: {label}", True)
    c.press("Save")
    assert "Settings saved" in c.banner(), c.banner()


def revealed_events(c: Console, token_id: str) -> int:
    reply = http("GET", f"{c.base}/api/v1/audit-events?action=token.revealed&token={token_id}", cookie_header(c))
    assert reply.status == 200, reply.text
    return len(reply.json()["items"])


def read_revealed(c: Console, name: str) -> str:
    """Reads the secret from the reveal's dialog, copies it, checks the clipboard and closes
    the dialog (the secret leaves the page)."""
    dialog = c.dialog()
    assert dialog.find_element("css selector", "h2").text == f"Token revealed: {name}"
    secret = c.field("Token", dialog).get_attribute("value")
    assert TOKEN_RE.match(secret), secret
    assert "every reveal is recorded in the audit log" in dialog.text
    c.press("Copy to Clipboard", dialog)
    wait_for(lambda: "Copied to the clipboard." in dialog.text, 10, "the copy")
    assert c.clipboard() == secret
    c.press("Done", dialog)
    assert c.no_dialog()
    assert secret not in c.driver.page_source
    return secret


def token_id(c: Console, name: str) -> str:
    return c.row(name).get_attribute("data-token-id")


def test_reveal_on_a_row_and_copy_of_the_legacy_token(admin: Console):
    c = admin
    make_recoverable(c, "Legacy tokens", "Client tokens")
    open_workspace_tokens(c)
    kept = create_token(c, "ci-reader", "client")
    create_token(c, "not-kept", "admin")
    # Only the recoverable one offers Reveal.
    assert c.has("button", "Reveal ci-reader")
    assert not c.has("button", "Reveal not-kept")
    ci_id = token_id(c, "ci-reader")

    c.press("Reveal ci-reader")
    found = c.axe()
    assert not found, f"the reveal dialog: {found}"
    assert read_revealed(c, "ci-reader") == kept
    assert "Token revealed: ci-reader." in c.banner()
    assert revealed_events(c, ci_id) == 1
    c.go(c.path)
    assert kept not in c.driver.page_source

    # The Legacy Token's Copy: straight to the clipboard, never into the page.
    c.go("/account")
    c.press("Create legacy token")
    legacy = read_dialog_secret(c)
    c.go("/account")
    c.press("Copy")
    wait_for(lambda: "Copied to the clipboard." in c.driver.find_element("id", "legacy-copy-status").text,
             10, "the Copy button's status")
    assert c.clipboard() == legacy
    assert legacy not in c.driver.page_source
    legacy_id = api(c, "GET", "/api/v1/me/tokens").json()
    legacy_id = next(t["id"] for t in legacy_id["items"] if t["type"] == "legacy")
    assert revealed_events(c, legacy_id) == 1

    # Revoked: nothing to reveal until restored.
    open_workspace_tokens(c)
    c.press("Revoke ci-reader")
    c.confirm("Revoke")
    assert not c.has("button", "Reveal ci-reader")


def test_owner_only_for_personal_tokens_throttle_and_csrf(admin: Console, browsers):
    c = admin
    make_recoverable(c, "Personal access tokens", "Client tokens")
    create_user(c, "mira", PASSWORD)
    add_member(c, "Workspace 1", "mira")
    shared = seed_token(c, {"name": "shared-client", "type": "client"})
    m = browsers()
    m.sign_in("mira", PASSWORD)
    open_workspace_tokens(m)
    mine = create_token(m, "mira-laptop")
    # A member reveals what she sees: the workspace's client token and her own.
    m.press("Reveal shared-client")
    assert read_revealed(m, "shared-client") == shared["token"]
    m.press("Reveal mira-laptop")
    assert read_revealed(m, "mira-laptop") == mine
    mira_token = token_id(m, "mira-laptop")

    # The org admin sees her personal token but may not reveal it: no button, and a form
    # written by hand (with a good CSRF proof) is refused without the secret.
    c.go("/api-access")
    assert c.has("button", "Revoke mira-laptop")
    assert not c.has("button", "Reveal mira-laptop")
    url = f"{c.base}/api-access/tokens/{mira_token}/reveal"
    refused = http("POST", url, {**cookie_header(c), **FORM},
                   urllib.parse.urlencode({"csrf_token": c.csrf(), "back": "/api-access"}))
    assert refused.status == 403, refused.status
    assert "only its owner may reveal" in refused.text
    assert mine not in refused.text
    # Without the CSRF proof: refused before anything is read.
    events = revealed_events(c, shared["id"])
    bare = http("POST", f"{c.base}/api-access/tokens/{shared['id']}/reveal", {**cookie_header(c), **FORM}, "")
    assert bare.status == 403
    assert shared["token"] not in bare.text
    assert revealed_events(c, shared["id"]) == events

    # Throttled per caller: past the limit (10 a minute) the page says so, no secret.
    for _ in range(8):
        assert api(m, "POST", f"/api/v1/tokens/{shared['id']}/reveal").status == 200
    open_workspace_tokens(m)
    m.press("Reveal shared-client")
    assert "Too many attempts" in m.banner(), m.banner()
    assert m.no_dialog()
    assert shared["token"] not in m.driver.page_source
