"""Token lists people can work with (issue 22), checked the way a person uses them: search,
filters and sort from the controls above the table, pages, the Expires soon badge, the
expiry presets of New token, coming back to the same place after an action with a message
that names the token, and a 375 px phone where chips and pills stay in their boxes.

Tokens are seeded through the API with the browser's session (as the console's own page
would call it); everything asserted is read off the page."""

from __future__ import annotations

import re

import pytest

from flows import cookie_header, open_form, open_workspace_tokens, read_dialog_secret, seed_token, set_expiry
from harness import Console, LatchkeyServer, http, publish_screenshots, wait_for

# The pictures docs/console.md shows from this file (LATCHKEY_UPDATE_DOCS_SCREENSHOTS=1).
DOC_SCREENSHOTS = [
    "token-list-filtered-desktop",
    "token-list-mobile",
    "token-list-filtered-mobile",
    "token-new-form-mobile",
    "token-after-revoke-mobile",
    "token-dialog-expiry-mobile",
]


@pytest.fixture
def fast_server(browser_ready):
    """A server that writes last-used times every second (the default is 5 s)."""
    srv = LatchkeyServer(extra_config="\n[verifier]\nlast_used_flush_secs = 1\n")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def admin_at(fast_server):
    opened: list[Console] = []

    def open_browser() -> Console:
        c = Console(fast_server.url)
        opened.append(c)
        c.sign_in("admin")
        assert c.heading() == "Workspaces", c.text()
        return c

    try:
        yield open_browser
    finally:
        for c in opened:
            c.quit()


def seed(c: Console, base: str, name: str, token_type: str = "client", days: int | None = None) -> dict:
    body: dict = {"name": name, "type": token_type}
    if days is not None:
        body["expires_in_days"] = days
    return seed_token(c, body)


def apply_filters(c: Console, search: str | None = None, token_type: str | None = None,
                  state: str | None = None, sort: str | None = None) -> None:
    if search is not None:
        c.fill("Search tokens", search)
    if token_type is not None:
        c.choose("Filter by type", token_type)
    if state is not None:
        c.choose("Filter by state", state)
    if sort is not None:
        c.choose("Sort by", sort)
    c.press("Apply")


def query_of(c: Console) -> str:
    return c.path.split("#")[0].split("?", 1)[1] if "?" in c.path else ""


def filters_of(query: str) -> dict[str, str]:
    """The filters a list's query sets (empty fields, the default order and the banner's
    parameters left out)."""
    pairs = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    return {k: v for k, v in pairs.items()
            if v and (k, v) != ("sort", "newest") and k not in ("done", "subject", "sig")}


def row_names(c: Console) -> list[str]:
    return c.rows()


def check_axe(c: Console, what: str) -> None:
    found = c.axe()
    assert not found, f"{what}: {found}"


def test_search_filter_sort_pages_and_keeping_the_place(fast_server, admin_at):
    c = admin_at()
    base = fast_server.url
    # 30 client tokens (svc-00 … svc-29), and a few with lifetimes and one used.
    for i in range(30):
        seed(c, base, f"svc-{i:02d}")
    seed(c, base, "Alpha-client")
    soon = seed(c, base, "rotating-soon", "personal", 3)
    seed(c, base, "next-week", "personal", 8)
    used = seed(c, base, "used-one", "client")
    projects = http("GET", f"{base}/api/v1/workspaces/Workspace%201/projects", {"X-API-Key": used["token"]})
    assert projects.status == 200, projects.text
    wait_for(lambda: http("GET", f"{base}/api/v1/tokens/{used['id']}", cookie_header(c)).json()["last_used_at"],
             20, "the last use to be recorded")

    open_workspace_tokens(c)
    # 35 tokens with the bootstrap one: 25 a page, newest first.
    assert "Showing 1–25 of 35 tokens" in c.text()
    assert row_names(c)[0] == "used-one"
    check_axe(c, "token list, page 1")
    c.follow("Next page")
    assert "page=2" in c.path
    assert "Showing 26–35 of 35 tokens" in c.text()
    assert row_names(c)[-1] == "Initial admin token"
    c.follow("Previous page")
    assert "page=" not in c.path

    # Search: name contains, any case.
    apply_filters(c, search="SVC-1")
    assert row_names(c) == [f"svc-{i}" for i in range(19, 9, -1)]
    assert "q=SVC-1" in c.path
    assert c.field("Search tokens").get_attribute("value") == "SVC-1"
    assert c.has("link", "Clear filters")

    # Type and state filters.
    c.follow("Clear filters")
    assert "q=" not in c.path
    apply_filters(c, token_type="personal")
    assert set(row_names(c)) == {"rotating-soon", "next-week", "Initial admin token"}
    apply_filters(c, token_type="", state="expires-soon")
    assert row_names(c) == ["rotating-soon"]
    row = c.row("rotating-soon")
    badge = row.find_element("css selector", "td[data-label=Expires] .badge")
    assert badge.text == "Expires soon"
    assert "in 3 days" in row.text
    # Eight days away is not soon; nor is anything that never expires.
    c.go("/workspaces/Workspace%201/settings/tokens?type=personal")
    assert not c.row("next-week").find_elements("css selector", ".badge")
    assert not c.row("Initial admin token").find_elements("css selector", ".badge")
    c.go("/workspaces/Workspace%201/settings/tokens?state=revoked")
    assert "No tokens match these filters." in c.text()
    check_axe(c, "token list, nothing matches")

    # Sorts, with aria-sort on the sorted column.
    c.go("/workspaces/Workspace%201/settings/tokens")
    apply_filters(c, sort="name")
    names = row_names(c)
    assert names[:3] == ["Alpha-client", "Initial admin token", "next-week"], names
    assert names == sorted(names, key=str.lower)
    header = c.driver.find_element("css selector", "table thead th[aria-sort]")
    assert (header.text.lower(), header.get_attribute("aria-sort")) == ("name", "ascending")
    apply_filters(c, sort="name-desc")
    assert row_names(c)[0] == "used-one"
    apply_filters(c, sort="expires")
    assert row_names(c)[:3] == ["rotating-soon", "next-week", "Initial admin token"]
    header = c.driver.find_element("css selector", "table thead th[aria-sort]")
    assert header.text.lower() == "expires"
    apply_filters(c, sort="last-used")
    assert row_names(c)[0] == "used-one"
    apply_filters(c, sort="least-used")
    c.follow("Next page")
    assert row_names(c)[-1] == "used-one"
    c.follow("Previous page")
    apply_filters(c, sort="oldest")
    assert row_names(c)[0] == "Initial admin token"

    # Keeping the place: search + sort + page 2, then revoke a row there.
    c.go("/workspaces/Workspace%201/settings/tokens?q=svc&sort=name")
    c.follow("Next page")
    assert "q=svc" in c.path and "sort=name" in c.path and "page=2" in c.path
    place = query_of(c)
    on_page = row_names(c)
    assert on_page == ["svc-25", "svc-26", "svc-27", "svc-28", "svc-29"]
    target = c.row("svc-27")
    target_id = target.get_attribute("data-token-id")
    c.press("Revoke svc-27")
    c.confirm("Revoke")
    assert c.banner() == "Token “svc-27” revoked. It stops working at once."
    assert query_of(c).startswith(place), (place, c.path)
    assert c.driver.execute_script("return location.hash") == f"#token-{target_id}"
    assert row_names(c) == on_page
    assert "Revoked" in c.row("svc-27").text
    assert c.field("Search tokens").get_attribute("value") == "svc"
    assert c.field("Sort by").get_attribute("value") == "name"
    # The row is in view and marked as the one acted on.
    in_view = c.driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;", f"token-{target_id}")
    assert in_view
    assert c.driver.execute_script(
        "return document.getElementById(arguments[0]).matches(':target')", f"token-{target_id}")

    # Restore and delete come back to the same place too, naming the token.
    c.press("Restore svc-27")
    assert c.banner() == "Token “svc-27” restored. It works again."
    assert query_of(c).startswith(place)
    c.press("Delete svc-28")
    c.confirm("Delete")
    assert c.banner() == "Token “svc-28” deleted."
    signed = c.path.split("#")[0]
    assert query_of(c).startswith(place)
    assert row_names(c) == ["svc-25", "svc-26", "svc-27", "svc-29"]

    # Rotate answers with the dialog at the same place, and Done leaves the page there.
    c.press("Rotate svc-29")
    c.confirm("Rotate")
    read_dialog_secret(c)
    assert query_of(c).startswith(place), c.path
    assert row_names(c) == ["svc-25", "svc-26", "svc-27", "svc-29"]

    # The banner's name is signed for this session: the same link in another session, or
    # one with another name, shows the fixed text only.
    other = admin_at()
    other.go(signed)
    assert other.banner() == "Token deleted."
    c.go(re.sub(r"subject=[^&]+", "subject=Send%20your%20password%20to%20evil.example", signed))
    assert c.banner() == "Token deleted."
    c.go(signed)
    assert c.banner() == "Token “svc-28” deleted."
    assert soon["name"] == "rotating-soon"


def test_new_token_expiry_presets(fast_server, admin_at):
    c = admin_at()
    base = fast_server.url
    open_workspace_tokens(c)
    c.press("New token")
    expiry = c.field("Expiration")
    assert not c.has("field", "Expires in (days)"), "Expires in (days) shows only for Custom"
    offered = lambda: c.driver.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('#token-expiry option')]"
        ".filter(o => !o.disabled).map(o => o.value)")
    # Personal (the default type): must expire, at most the longest allowed (270 days).
    assert offered() == ["7", "30", "60", "90", "270", "custom"]
    assert expiry.get_attribute("value") == "30"
    labels = [label for _, label in c.options("Expiration")]
    assert "270 days (the longest allowed)" in labels and "No expiration" in labels
    # A workspace type may never expire, and that becomes the default.
    c.choose("Type", "client")
    assert "none" in offered()
    assert c.field("Expiration").get_attribute("value") == "none"
    c.choose("Type", "personal")
    assert c.field("Expiration").get_attribute("value") == "30"
    # Custom shows Expires in (days); once a person chose, a type change keeps the choice
    # when that type allows it.
    c.choose("Expiration", "custom")
    assert c.has("field", "Expires in (days)")
    c.choose("Expiration", "30")
    assert not c.has("field", "Expires in (days)")
    c.choose("Type", "client")
    assert c.field("Expiration").get_attribute("value") == "30"
    c.choose("Expiration", "none")
    c.choose("Type", "personal")
    assert c.field("Expiration").get_attribute("value") == "30", "personal tokens must expire"

    def create(name: str, token_type: str, days: str) -> str:
        open_form(c)
        c.fill("Token Name", name)
        c.choose("Type", token_type)
        set_expiry(c, days)
        c.press("Create Token")
        dialog = c.dialog()
        text = dialog.text
        read_dialog_secret(c)
        return text

    text = create("week-client", "client", "7")
    assert "It expires in 7 days." in text
    row = c.row("week-client")
    assert "in 7 days" in row.text and "Expires soon" in row.text
    when = row.find_element("css selector", "td[data-label=Expires] time")
    assert when.get_attribute("datetime").endswith("Z") and when.get_attribute("title").endswith("UTC")
    assert "It expires in 60 days." in create("two-months", "personal", "60")
    assert "in 60 days" in c.row("two-months").text
    assert "It expires in 12 days." in create("custom-twelve", "personal", "12")
    assert "It never expires." in create("forever-client", "client", "none")
    assert "Never" in c.row("forever-client").text

    # Without the script (a plain form post): No expiration is refused for personal tokens,
    # with the field named, and nothing is created.
    csrf = c.csrf()
    url = c.driver.current_url.split("?")[0].split("#")[0]
    refused = http("POST", url, {**cookie_header(c), "Content-Type": "application/x-www-form-urlencoded",
                                 "Sec-Fetch-Site": "same-origin"},
                   f"name=no-end&type=personal&expiry=none&csrf_token={csrf}")
    assert refused.status == 422
    assert "Expiration: Personal tokens must expire" in refused.text
    listed = http("GET", f"{base}/api/v1/workspaces/Workspace%201/tokens?limit=200", cookie_header(c)).json()
    assert "no-end" not in [t["name"] for t in listed["items"]]
    check_axe(c, "token list after creating")


def boxes(c: Console, row_name: str) -> dict:
    """Layout boxes of one stacked row: each cell, its value box, the chips, the pill."""
    return c.driver.execute_script(
        """
        const row = [...document.querySelectorAll('table tbody tr')]
          .find(r => r.querySelector('th[scope=row]').textContent.trim() === arguments[0]);
        const box = e => { const r = e.getBoundingClientRect();
          return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
        const cell = label => row.querySelector(`[data-label="${label}"]`);
        return {
          row: box(row),
          scopes: box(cell('Scopes')), scopesValue: box(cell('Scopes').querySelector('.cell')),
          chips: [...cell('Scopes').querySelectorAll('.scope')].map(box),
          state: box(cell('State')), stateValue: box(cell('State').querySelector('.cell')),
          pill: box(cell('State').querySelector('.state')),
          expires: box(cell('Expires')),
          badge: cell('Expires').querySelector('.badge') ? box(cell('Expires').querySelector('.badge')) : null,
          // Where the value column starts: the label column (::before) is left of it.
          labelWidth: cell('Scopes').querySelector('.cell').getBoundingClientRect().left
                      - cell('Scopes').getBoundingClientRect().left,
        };
        """,
        row_name,
    )


def test_a_phone_at_375_px(fast_server, admin_at):
    c = admin_at()
    base = fast_server.url
    seed(c, base, "deploy-bot-with-a-rather-long-name-for-a-phone", "admin")
    seed(c, base, "web-client", "client", 5)
    open_workspace_tokens(c)
    c.set_width(True)
    c.driver.refresh()
    c.wait_ready()
    assert c.driver.execute_script("return window.innerWidth") == 375
    assert not c.overflows_horizontally()
    check_axe(c, "token list at 375 px")
    c.screenshot("token-list-mobile")

    for name in ("deploy-bot-with-a-rather-long-name-for-a-phone", "web-client", "Initial admin token"):
        b = boxes(c, name)
        label_edge = b["scopes"]["left"] + b["labelWidth"]
        assert b["labelWidth"] > 90, b  # 6.5rem of label, then the value
        # Every scope chip sits in the value column, inside the cell and the card.
        assert b["chips"], name
        for chip in b["chips"]:
            assert chip["left"] >= label_edge - 0.5, (name, chip, label_edge)
            assert chip["left"] >= b["scopesValue"]["left"] - 0.5 and chip["right"] <= b["scopesValue"]["right"] + 0.5
            assert chip["right"] <= b["row"]["right"], (name, chip)
        # The state pill keeps its own width: not the cell's, not the value column's.
        column = b["state"]["width"] - b["labelWidth"]
        assert b["pill"]["width"] < column * 0.8, (name, b["pill"], column)
        assert b["pill"]["width"] != b["state"]["width"]
        assert b["pill"]["left"] >= b["state"]["left"] + b["labelWidth"] - 0.5
        if b["badge"]:
            assert b["badge"]["right"] <= b["expires"]["right"] + 0.5
    assert boxes(c, "web-client")["badge"], "web-client expires in 5 days: badged"
    # The admin token's six scopes wrap onto several lines, all in the value column.
    chips = boxes(c, "deploy-bot-with-a-rather-long-name-for-a-phone")["chips"]
    assert len({round(ch["top"]) for ch in chips}) > 1

    apply_filters(c, search="web")
    assert row_names(c) == ["web-client"]
    assert not c.overflows_horizontally()
    c.screenshot("token-list-filtered-mobile")

    c.press("New token")
    assert not c.overflows_horizontally()
    check_axe(c, "New token form at 375 px")
    c.screenshot("token-new-form-mobile")
    c.fill("Token Name", "phone-token")
    c.choose("Expiration", "7")
    c.press("Create Token")
    c.dialog()
    c.screenshot("token-dialog-expiry-mobile")
    assert not c.overflows_horizontally()
    read_dialog_secret(c)

    c.press("Revoke web-client")
    c.confirm("Revoke")
    assert c.banner() == "Token “web-client” revoked. It stops working at once."
    assert "q=web" in c.path
    c.screenshot("token-after-revoke-mobile")

    c.set_width(False)
    c.go("/workspaces/Workspace%201/settings/tokens?q=client&sort=name")
    c.screenshot("token-list-filtered-desktop")

    publish_screenshots(DOC_SCREENSHOTS)


def test_account_and_api_access_share_the_list(fast_server, admin_at):
    c = admin_at()
    base = fast_server.url
    seed(c, base, "api-only-client")
    c.go("/account")
    c.press("New token")
    c.fill("Token Name", "laptop")
    c.choose("Workspace", c.options("Workspace")[0][0])
    set_expiry(c, "7")
    c.press("Create Token")
    read_dialog_secret(c)
    # My personal tokens only; no type filter where there is one type.
    assert set(row_names(c)) == {"laptop", "Initial admin token"}
    assert not c.has("field", "Filter by type")
    assert "Expires soon" in c.row("laptop").text
    apply_filters(c, state="expires-soon")
    assert row_names(c) == ["laptop"]
    c.press("Revoke laptop")
    c.confirm("Revoke")
    assert c.banner() == "Token “laptop” revoked. It stops working at once."
    assert c.path.startswith("/account?state=expires-soon")
    # Revoked tokens are no longer "expiring soon": the filtered list is empty, and says so.
    assert "No tokens match these filters." in c.text()

    c.go("/api-access")
    apply_filters(c, search="api-only", token_type="client")
    assert row_names(c) == ["api-only-client"]
    assert "Workspace 1" in c.row("api-only-client").text
    c.press("Rotate api-only-client")
    c.confirm("Rotate")
    read_dialog_secret(c)
    assert c.path.startswith("/api-access?q=api-only&type=client")
    check_axe(c, "API access, filtered")


def test_type_and_state_filters_keep_their_place_through_every_action(fast_server, admin_at):
    """The list first and New token opening the form (Cancel keeps the place); Filter by
    type for each workspace type; Filter by state for active, revoked and type disabled;
    every action from a filtered list returns to it naming the token; the 90-day preset;
    a rotation's grace period read as people say it."""
    c = admin_at()
    base = fast_server.url
    for name, token_type in (("ci-a", "client"), ("ci-b", "client"), ("web-x", "frontend"),
                             ("ops-y", "admin")):
        seed(c, base, name, token_type)
    gone = seed(c, base, "ci-gone", "client")
    assert http("POST", f"{base}/api/v1/tokens/{gone['id']}/revoke",
                {**cookie_header(c), "Sec-Fetch-Site": "same-origin"}).status == 200

    open_workspace_tokens(c)
    # The list comes first; New token opens the form above it, Cancel closes it and keeps
    # the list's place.
    apply_filters(c, token_type="client")
    place = query_of(c)
    assert row_names(c) and not c.has("field", "Token Name")
    c.press("New token")
    assert c.has("field", "Token Name") and c.has("button", "Create Token")
    assert c.driver.switch_to.active_element.accessible_name == "Token Name"
    assert row_names(c), "the list stays under the form"
    c.follow("Cancel")
    assert not c.has("field", "Token Name")
    assert filters_of(query_of(c)) == filters_of(place) == {"type": "client"}, (place, c.path)

    # Filter by type: each workspace type, exactly its tokens.
    assert set(row_names(c)) == {"ci-a", "ci-b", "ci-gone"}
    apply_filters(c, token_type="frontend")
    assert row_names(c) == ["web-x"]
    apply_filters(c, token_type="admin")
    assert row_names(c) == ["ops-y"]
    assert [v for v, _ in c.options("Filter by type")] == ["", "personal", "client", "frontend", "admin"]

    # Filter by state: revoked, active, and combined with a type.
    apply_filters(c, token_type="", state="revoked")
    assert row_names(c) == ["ci-gone"]
    assert "Revoked" in c.row("ci-gone").text
    apply_filters(c, state="active")
    assert "ci-gone" not in row_names(c) and {"ci-a", "ci-b", "web-x", "ops-y"} <= set(row_names(c))
    apply_filters(c, token_type="client", state="active", sort="name")
    assert row_names(c) == ["ci-a", "ci-b"]
    check_axe(c, "token list filtered by type and state")
    place = query_of(c)
    assert "type=client" in place and "state=active" in place and "sort=name" in place

    # Every action from the filtered list comes back to it and names the token.
    c.press("Rotate ci-b")
    box = c.dialog("alertdialog")
    c.choose("Old secret keeps working for", "3600")
    c.press("Rotate", box)
    dialog = c.dialog()
    assert "Token rotated" in dialog.text and "ci-b" in dialog.text
    assert "The old secret stops working in 1 hour." in dialog.text, dialog.text
    until = dialog.find_element("css selector", "time")
    assert until.get_attribute("datetime").endswith("Z") and until.get_attribute("title").endswith("UTC")
    read_dialog_secret(c)
    assert filters_of(query_of(c)) == filters_of(place), (place, c.path)
    c.press("Revoke ci-a")
    c.confirm("Revoke")
    assert c.banner() == "Token “ci-a” revoked. It stops working at once."
    assert filters_of(query_of(c)) == filters_of(place), (place, c.path)
    assert row_names(c) == ["ci-b"], "revoked tokens leave the active list"
    apply_filters(c, state="revoked")
    place = query_of(c)
    c.press("Restore ci-a")
    assert c.banner() == "Token “ci-a” restored. It works again."
    assert filters_of(query_of(c)) == filters_of(place), (place, c.path)
    assert row_names(c) == ["ci-gone"]
    c.press("Delete ci-gone")
    c.confirm("Delete")
    assert c.banner() == "Token “ci-gone” deleted."
    assert filters_of(query_of(c)) == filters_of(place), (place, c.path)
    assert "No tokens match these filters." in c.text()

    # Type disabled: switching frontend tokens off in Access Token Settings.
    c.go("/organization/token-settings")
    c.check("Frontend tokens", False)
    c.press("Save")
    c.go("/workspaces/Workspace%201/settings/tokens?state=type_disabled")
    assert row_names(c) == ["web-x"]
    assert "Type disabled" in c.row("web-x").text
    check_axe(c, "token list, type disabled")

    # The 90-day preset.
    c.go("/workspaces/Workspace%201/settings/tokens")
    open_form(c)
    c.fill("Token Name", "quarterly")
    set_expiry(c, "90")
    c.press("Create Token")
    assert "It expires in 90 days." in c.dialog().text
    read_dialog_secret(c)
    row = c.row("quarterly")
    assert "in 90 days" in row.text and "Expires soon" not in row.text
