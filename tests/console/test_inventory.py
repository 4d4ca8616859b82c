"""The token inventory in the console (DESIGN.md §8 "Inventory"): the filters of
`GET /api/v1/tokens` above the API access table and a workspace's API Access Tokens, kept
across pages; Download CSV with the same filters; ticking rows and Revoke selected, whose
banner names what was revoked and what was skipped with why; a member who sees only what
a member may; and a bulk revoke without the page's CSRF proof refused.

Tokens are seeded through the API with the browser's session; everything asserted about
the console is read off the page."""

from __future__ import annotations

import datetime
import json
import urllib.parse

from flows import add_member, cookie_header, create_token, create_user, open_workspace_tokens, seed_token
from harness import Console, http, wait_for

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
PASSWORD = "member password 1"


def set_date(c: Console, label: str, value: str) -> None:
    """Sets a date field (a date picker's typing depends on the browser's locale, so the
    value is set as the picker would leave it)."""
    c.driver.execute_script("arguments[0].value = arguments[1];", c.field(label), value)


def day(offset: int) -> str:
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def api(c: Console, method: str, path: str, body: dict | None = None):
    headers = {**cookie_header(c), "Sec-Fetch-Site": "same-origin"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return http(method, c.base + path, headers, json.dumps(body) if body is not None else None)


def state_of(c: Console, token_id: str) -> str:
    reply = api(c, "GET", f"/api/v1/tokens/{token_id}")
    assert reply.status == 200, reply.text
    return reply.json()["state"]


def query(c: Console) -> dict[str, str]:
    parsed = urllib.parse.urlparse(c.driver.current_url)
    return dict(urllib.parse.parse_qsl(parsed.query))


def test_filters_pages_csv_and_revoke_selected(admin: Console, browsers):
    c = admin
    create_user(c, "mira", PASSWORD)
    add_member(c, "Workspace 1", "mira")
    svc = {f"svc-{i:02d}": seed_token(c, {"name": f"svc-{i:02d}", "type": "client"}) for i in range(30)}
    soon = seed_token(c, {"name": "short-lived", "type": "client", "expires_in_days": 3})
    seed_token(c, {"name": "long-lived", "type": "client", "expires_in_days": 60})
    used = seed_token(c, {"name": "used-one", "type": "client"})
    assert http("GET", f"{c.base}/api/v1/workspaces/Workspace%201/projects", {"X-API-Key": used["token"]}).status == 200
    m = browsers()
    m.sign_in("mira", PASSWORD)
    open_workspace_tokens(m)
    create_token(m, "mira-laptop")

    c.go("/api-access")
    assert c.heading() == "API access"
    # Name search with pages: the filter stays on every page.
    c.fill("Search tokens", "svc-")
    c.press("Apply")
    assert query(c)["q"] == "svc-"
    assert "Showing 1–25 of 30 tokens" in c.text()
    c.follow("Next page")
    assert query(c) == {"q": "svc-", "page": "2"}
    assert c.rows() == [f"svc-{i:02d}" for i in range(4, -1, -1)]
    found = c.axe()
    assert not found, f"inventory page: {found}"
    c.set_width(mobile=True)
    assert not c.overflows_horizontally(), "the inventory's filters and checkboxes at 375 px"
    c.screenshot("inventory-mobile")
    c.set_width(mobile=False)
    assert c.field("Search tokens").get_attribute("value") == "svc-"

    # Download CSV: the same filters, every page.
    link = c.link("Download CSV")
    href = link.get_attribute("href")
    assert "format=csv" in href and "q=svc-" in href, href
    csv = http("GET", href, cookie_header(c))
    assert csv.status == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().split("\r\n")
    assert len(lines) == 31, lines[:3]
    assert lines[0].startswith("id,name,type,state")
    assert all(",svc-" in line for line in lines[1:])

    # Owner, dates and never used, each asked of the service.
    c.follow("Clear filters")
    c.fill("Owner", "mira")
    c.press("Apply")
    assert c.rows() == ["mira-laptop"]
    assert c.field("Owner").get_attribute("value") == "mira"
    c.follow("Clear filters")
    set_date(c, "Expires before", day(10))
    c.choose("Filter by type", "client")
    c.press("Apply")
    assert c.rows() == ["short-lived"]
    assert query(c)["expires_before"] == day(10)
    c.follow("Clear filters")
    set_date(c, "Created before", day(0))
    c.press("Apply")
    assert c.rows() == []
    assert "No tokens match these filters." in c.text()
    c.follow("Clear filters")
    wait_for(lambda: api(c, "GET", f"/api/v1/tokens/{used['id']}").json()["last_used_at"], 20,
             "the use to be recorded")
    set_date(c, "Last used before", day(1))
    c.press("Apply")
    assert c.rows() == ["used-one"]
    c.follow("Clear filters")
    c.fill("Search tokens", "-")
    c.check("Never used", True)
    c.press("Apply")
    assert "used-one" not in c.rows()
    assert "short-lived" in c.rows() and "mira-laptop" in c.rows()
    assert query(c)["never_used"] == "true"
    # A filter the service refuses is said on the page.
    c.go("/api-access?created_before=yesterday")
    assert c.banner() == "Created before: Give a date (YYYY-MM-DD) or an RFC 3339 time.", c.banner()

    # Revoke selected: three ticked, one of them revoked meanwhile elsewhere.
    c.go("/api-access?q=svc-0")
    for name in ("svc-09", "svc-08", "svc-07"):
        c.check(f"Select {name}", True)
    assert api(c, "POST", f"/api/v1/tokens/{svc['svc-07']['id']}/revoke").status == 200
    c.press("Revoke selected")
    c.confirm("Revoke")
    wait_for(lambda: "Revoked 2 tokens" in c.banner(), 10, "the bulk revoke's banner")
    banner = c.banner()
    assert "Revoked 2 tokens: “svc-09”, “svc-08”." in banner, banner
    assert "Skipped 1 token: “svc-07” (already revoked)." in banner, banner
    assert query(c)["q"] == "svc-0"
    for name in ("svc-09", "svc-08", "svc-07"):
        assert state_of(c, svc[name]["id"]) == "revoked"
    assert state_of(c, svc["svc-06"]["id"]) == "active"
    assert state_of(c, soon["id"]) == "active"
    # Revoked rows have no checkbox any more.
    assert not c.has("checkbox", "Select svc-09")
    # One audit event per token revoked in bulk.
    for name in ("svc-09", "svc-08"):
        audit = api(c, "GET", f"/api/v1/audit-events?action=token.revoked&token={svc[name]['id']}")
        assert audit.status == 200, audit.text
        assert len(audit.json()["items"]) == 1, audit.text


def test_member_sees_only_theirs_and_may_not_revoke_others(admin: Console, browsers):
    c = admin
    create_user(c, "mira", PASSWORD)
    add_member(c, "Workspace 1", "mira")
    admin_personal = seed_token(c, {"name": "admins-own", "type": "personal"})
    shared = seed_token(c, {"name": "shared-client", "type": "client"})
    m = browsers()
    m.sign_in("mira", PASSWORD)
    open_workspace_tokens(m)
    create_token(m, "mira-laptop")
    create_token(m, "mira-ci")

    # Her list: her own and the workspace's client token; never the admin's.
    rows = m.rows()
    assert set(rows) == {"mira-laptop", "mira-ci", "shared-client"}, rows
    m.fill("Owner", "admin")
    m.press("Apply")
    assert m.rows() == []
    href = m.link("Download CSV").get_attribute("href")
    assert "owner=admin" in href
    m.follow("Clear filters")
    every = http("GET", m.link("Download CSV").get_attribute("href"), cookie_header(m))
    assert every.status == 200
    assert "admins-own" not in every.text and "Initial admin token" not in every.text
    assert "mira-laptop" in every.text
    # No API access page for a member.
    m.go("/api-access")
    assert m.heading() != "API access"

    # Her own revoked in bulk; the admin's token is skipped as not found (she cannot see
    # it), never revoked, even from a form she wrote herself with a valid CSRF proof.
    open_workspace_tokens(m)
    m.check("Select mira-ci", True)
    m.press("Revoke selected")
    m.confirm("Revoke")
    wait_for(lambda: "Revoked 1 token" in m.banner(), 10, "the banner")
    assert "Revoked 1 token: “mira-ci”." in m.banner()
    url = m.driver.current_url.split("?")[0] + "/bulk-revoke"
    body = urllib.parse.urlencode([("csrf_token", m.csrf()), ("ids", admin_personal["id"]), ("ids", shared["id"])])
    forged = http("POST", url, {**cookie_header(m), **FORM}, body)
    assert forged.status == 303, forged.text
    m.go(forged.headers["location"].removeprefix(m.base))
    found = m.axe()
    assert not found, f"a member's inventory after a bulk revoke: {found}"
    assert "Skipped 2 tokens" in m.banner(), m.banner()
    assert f"{admin_personal['id']} (not found)" in m.banner()
    assert "“shared-client” (you may not revoke it)" in m.banner()
    assert state_of(c, admin_personal["id"]) == "active"
    assert state_of(c, shared["id"]) == "active"


def test_revoke_selected_needs_the_csrf_proof(admin: Console):
    c = admin
    target = seed_token(c, {"name": "keep-me", "type": "client"})
    c.go("/api-access")
    url = c.base + "/api-access/tokens/bulk-revoke"
    cookie = cookie_header(c)
    missing = http("POST", url, {**cookie, **FORM}, "ids=" + target["id"])
    assert missing.status == 403
    wrong = http("POST", url, {**cookie, **FORM}, f"ids={target['id']}&csrf_token=" + "0" * 64)
    assert wrong.status == 403
    cross = http("POST", url, {**cookie, "Content-Type": "application/x-www-form-urlencoded",
                               "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                 f"ids={target['id']}&csrf_token={c.csrf()}")
    assert cross.status == 403
    assert state_of(c, target["id"]) == "active"
    # Nothing ticked: said, nothing changed.
    empty = http("POST", url, {**cookie, **FORM}, f"csrf_token={c.csrf()}")
    assert empty.status == 422
    assert "select the tokens to revoke first" in empty.text.lower()
