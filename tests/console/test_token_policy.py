"""A token's verify-time policy in the console (DESIGN.md §8): the create form's Advanced
part, the facts on a token's page and its Edit policy form; errors that name the field and
keep what was typed; the CSRF check; who may edit; accessibility."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from flows import (
    add_member,
    cookie_header,
    create_user,
    open_form,
    open_workspace_tokens,
    read_dialog_secret,
    seed_token,
)
from harness import Console, http

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}


def open_details(c: Console, summary: str) -> None:
    """Opens a `<details>` part by its summary, as a person clicks it."""
    element = c.driver.find_element("xpath", f"//summary[normalize-space()='{summary}']")
    if element.find_element("xpath", "..").get_attribute("open") is None:
        c.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()


def verify(base: str, secret: str, ip: str | None = None) -> dict:
    body = {"token": secret} if ip is None else {"token": secret, "ip": ip}
    reply = http("POST", base + "/api/v1/tokens/verify", {"Content-Type": "application/json"},
                 json.dumps(body))
    assert reply.status == 200, reply.text
    return reply.json()


def api_token(c: Console, token_id: str) -> dict:
    reply = http("GET", f"{c.base}/api/v1/tokens/{token_id}", cookie_header(c))
    assert reply.status == 200, reply.text
    return reply.json()


def fact(c: Console, term: str) -> str:
    """The value next to `term` in the token's policy facts."""
    section = c.driver.find_element("css selector", "section[aria-labelledby=policy-heading]")
    for row in section.find_elements("css selector", "dl > div"):
        if row.find_element("css selector", "dt").text.strip() == term:
            return row.find_element("css selector", "dd").text.strip()
    raise AssertionError(f"no fact {term!r} in {section.text!r}")


def test_create_with_a_policy_then_edit_it_on_the_tokens_page(server, admin):
    c = admin
    open_workspace_tokens(c)
    open_form(c)
    # The Advanced part is closed until opened; its fields are named as DESIGN §5 names.
    assert not c.has("field", "Metadata (JSON)")
    c.fill("Token Name", "partner-api")
    c.choose("Type", "client")
    open_details(c, "Advanced")
    c.fill("Metadata (JSON)", '{"plan": "pro", "customer": 42}')
    c.fill("Allowed IPs", "203.0.113.0/24\n2001:db8::/32")
    c.fill("Rate limit (uses)", "100")
    c.fill("Window (seconds)", "60")
    c.fill("Remaining uses", "50")
    c.choose("Refill", "monthly")
    c.fill("Refill amount", "50")
    c.press("Create Token")
    secret = read_dialog_secret(c)

    allowed = verify(server.url, secret, "203.0.113.7")
    assert allowed["valid"] and allowed["token"]["metadata"] == {"plan": "pro", "customer": 42}
    assert verify(server.url, secret, "198.51.100.1")["reason"] == "ip_not_allowed"

    # The token's page states the policy.
    c.follow("partner-api")
    assert c.heading() == "partner-api"
    assert c.has("heading", "Verify-time policy")
    assert '"plan": "pro"' in fact(c, "Metadata")
    assert fact(c, "Allowed IPs").split() == ["203.0.113.0/24", "2001:db8::/32"]
    assert fact(c, "Rate limit") == "100 uses per 60 seconds"
    assert fact(c, "Refill") == "Back to 50 uses on the first of every month (00:00 UTC)"
    assert fact(c, "Remaining uses").isdigit()
    token_id = c.path.rsplit("/", 1)[1]
    uses_before = api_token(c, token_id)["remaining_uses"]

    # Edit: a lower rate limit, any address; Remaining uses untouched is not sent.
    open_details(c, "Edit policy")
    assert c.field("Rate limit (uses)").get_attribute("value") == "100"
    c.fill("Rate limit (uses)", "5")
    c.fill("Allowed IPs", "")
    c.press("Save policy")
    assert c.banner() == "Policy of token “partner-api” saved. It applies from the next use."
    assert c.heading() == "partner-api"
    assert fact(c, "Rate limit") == "5 uses per 60 seconds"
    assert fact(c, "Allowed IPs") == "Any address"
    after = api_token(c, token_id)
    assert after["allowed_ips"] is None and after["rate_limit"] == {"limit": 5, "window_secs": 60}
    assert after["remaining_uses"] == uses_before
    assert after["metadata"] == {"plan": "pro", "customer": 42}
    assert verify(server.url, secret, "198.51.100.1")["valid"]

    # Clearing every field: nothing is checked or counted any more.
    open_details(c, "Edit policy")
    for label in ("Metadata (JSON)", "Rate limit (uses)", "Window (seconds)", "Remaining uses",
                  "Refill amount"):
        c.fill(label, "")
    c.choose("Refill", "")
    c.press("Save policy")
    assert "saved" in c.banner()
    assert [fact(c, t) for t in ("Metadata", "Rate limit", "Remaining uses", "Refill")] == [
        "None", "No limit", "Unlimited", "Never"]
    cleared = api_token(c, token_id)
    assert [cleared[k] for k in ("metadata", "allowed_ips", "rate_limit", "remaining_uses", "refill")] == [
        None] * 5


def test_errors_name_the_field_and_keep_what_was_typed(server, admin):
    c = admin
    open_workspace_tokens(c)
    open_form(c)
    c.fill("Token Name", "refused-policy")
    c.choose("Type", "client")
    open_details(c, "Advanced")
    c.fill("Metadata (JSON)", "[1, 2]")
    c.fill("Remaining uses", "7")
    c.press("Create Token")
    assert c.banner().startswith("Metadata (JSON): "), c.banner()
    # The form is open again, the Advanced part too, with what was typed.
    assert c.field("Metadata (JSON)").get_attribute("value") == "[1, 2]"
    assert c.field("Remaining uses").get_attribute("value") == "7"
    assert c.field("Token Name").get_attribute("value") == "refused-policy"

    c.fill("Metadata (JSON)", "{plan: pro}")
    c.press("Create Token")
    assert c.banner().startswith("Metadata (JSON): Not valid JSON"), c.banner()

    c.fill("Metadata (JSON)", "")
    # (0 the browser refuses itself: the field says min 1.) Over the server's highest:
    c.fill("Rate limit (uses)", "2000000000")
    c.fill("Window (seconds)", "60")
    c.press("Create Token")
    assert c.banner().startswith("Rate limit (uses): "), c.banner()

    c.fill("Rate limit (uses)", "10")
    c.fill("Window (seconds)", "")
    c.press("Create Token")
    assert c.banner().startswith("Window (seconds): "), c.banner()
    c.go("/workspaces/Workspace%201/settings/tokens")
    assert "refused-policy" not in c.rows()

    # On the token's page: a bad CIDR is refused, the form stays open with it, nothing
    # changes.
    token = seed_token(c, {"name": "kept-policy", "type": "client", "allowed_ips": ["10.0.0.0/8"]})
    c.go(f"/workspaces/Workspace%201/settings/tokens/{token['id']}")
    open_details(c, "Edit policy")
    c.fill("Allowed IPs", "10.0.0.0/33")
    c.press("Save policy")
    assert c.banner().startswith("Allowed IPs: "), c.banner()
    assert c.field("Allowed IPs").get_attribute("value") == "10.0.0.0/33"
    assert fact(c, "Allowed IPs") == "10.0.0.0/8"
    assert api_token(c, token["id"])["allowed_ips"] == ["10.0.0.0/8"]


def test_the_policy_form_needs_the_csrf_token_and_the_right_to_manage(server, admin, browsers):
    c = admin
    token = seed_token(c, {"name": "guarded-policy", "type": "client", "metadata": {"v": 1}})
    page = f"{server.url}/workspaces/Workspace%201/settings/tokens/{token['id']}"
    body = {"metadata": '{"v": 2}', "metadata_was": '{"v": 1}'}
    missing = http("POST", page + "/policy", {**cookie_header(c), **FORM}, urlencode(body))
    assert missing.status == 403
    c.go(f"/workspaces/Workspace%201/settings/tokens/{token['id']}")
    forged = http("POST", page + "/policy", {**cookie_header(c), **FORM, "Origin": "http://evil.example",
                                            "Sec-Fetch-Site": "cross-site"},
                  urlencode({**body, "csrf_token": c.csrf()}))
    assert forged.status == 403
    assert api_token(c, token["id"])["metadata"] == {"v": 1}
    ok = http("POST", page + "/policy", {**cookie_header(c), **FORM}, urlencode({**body, "csrf_token": c.csrf()}))
    assert ok.status == 303, ok.status
    assert api_token(c, token["id"])["metadata"] == {"v": 2}

    # A member of the workspace sees the policy but cannot edit it.
    create_user(c, "vera", "vera password 12345")
    add_member(c, "Workspace 1", "vera", "member")
    vera = browsers()
    vera.sign_in("vera", "vera password 12345")
    vera.go(f"/workspaces/{quote('Workspace 1')}/settings/tokens/{token['id']}")
    assert vera.heading() == "guarded-policy"
    assert '"v": 2' in fact(vera, "Metadata")
    assert not vera.driver.find_elements("xpath", "//summary[normalize-space()='Edit policy']")
    refused = http("POST", page + "/policy", {**cookie_header(vera), **FORM},
                   urlencode({"metadata": '{"v": 3}', "metadata_was": '{"v": 2}', "csrf_token": vera.csrf()}))
    assert refused.status in (403, 404), refused.status
    assert api_token(c, token["id"])["metadata"] == {"v": 2}


def test_the_policy_parts_are_accessible(server, admin):
    c = admin
    problems: list[str] = []
    token = seed_token(c, {"name": "audited-policy", "type": "client", "metadata": {"plan": "pro"},
                           "rate_limit": {"limit": 10, "window_secs": 60}, "remaining_uses": 3,
                           "refill": {"amount": 3, "interval": "daily"}})
    c.go("/workspaces/Workspace%201/settings/tokens?new=1")
    open_details(c, "Advanced")
    pages = [("create form, Advanced open", None),
             ("token page, Edit policy open", f"/workspaces/Workspace%201/settings/tokens/{token['id']}")]
    for name, path in pages:
        if path:
            c.go(path)
            open_details(c, "Edit policy")
        for mobile in (False, True):
            c.set_width(mobile)
            problems += [f"{name} ({'mobile' if mobile else 'desktop'}): {v}" for v in c.axe()]
            if mobile and c.overflows_horizontally():
                problems.append(f"{name}: scrolls sideways at 375 px")
        c.set_width(False)
        c.screenshot(f"token-policy-{'form' if path is None else 'page'}")
    assert not problems, "\n".join(map(str, problems))
