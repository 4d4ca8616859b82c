"""Usage details on a token's page (DESIGN.md §8): the recent client IPs and a table of the
days with uses, read from the flushed counts; an unused token says so; accessibility and
the phone layout."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from flows import open_workspace_tokens, seed_token
from harness import Console, http


def verify_from(base: str, secret: str, ip: str) -> None:
    reply = http("POST", base + "/api/v1/tokens/verify", {"Content-Type": "application/json"},
                 json.dumps({"token": secret, "ip": ip}))
    assert reply.status == 200 and reply.json()["valid"], reply.text


def table_rows(c: Console, name: str) -> list[list[str]]:
    """The body rows of the table named `name` (its heading), cell texts in order."""
    for table in c.driver.find_elements("css selector", "table"):
        if (table.accessible_name or "").strip() == name:
            return [
                [cell.text.strip() for cell in row.find_elements("css selector", "th, td")]
                for row in table.find_elements("css selector", "tbody tr")
            ]
    raise AssertionError(f"no table named {name!r} on {c.path}:\n{c.text()}")


def open_token(c: Console, name: str) -> None:
    open_workspace_tokens(c)
    c.follow(name)
    assert c.heading() == name


def test_the_token_page_shows_recent_ips_and_daily_uses(server, admin):
    c = admin
    used = seed_token(c, {"name": "usage-used", "type": "client"})
    seed_token(c, {"name": "usage-idle", "type": "client"})
    for ip in ["203.0.113.7", "203.0.113.7", "198.51.100.4", "203.0.113.7", "2001:db8::9"]:
        verify_from(server.url, used["token"], ip)

    open_token(c, "usage-used")
    assert c.has("heading", "Usage")
    usage = c.driver.find_element("css selector", "section[aria-labelledby=usage-heading]")
    assert "5 uses in the last 90 days" in usage.text, usage.text
    assert c.has("heading", "Recent client IPs")
    ips = table_rows(c, "Recent client IPs")
    assert sorted(row[0] for row in ips) == ["198.51.100.4", "2001:db8::9", "203.0.113.7"], ips
    assert all(row[1] for row in ips), ips
    today = datetime.now(timezone.utc).date().isoformat()
    days = table_rows(c, "Daily uses")
    assert days == [[today, "5"]], days
    assert c.axe() == []
    c.set_width(mobile=True)
    assert not c.overflows_horizontally()
    c.set_width(mobile=False)

    # More uses show after the page is loaded again (the page flushes this node's counts).
    verify_from(server.url, used["token"], "192.0.2.1")
    c.driver.refresh()
    c.wait_ready()
    assert table_rows(c, "Daily uses") == [[today, "6"]]
    assert "192.0.2.1" in [row[0] for row in table_rows(c, "Recent client IPs")]

    open_token(c, "usage-idle")
    usage = c.driver.find_element("css selector", "section[aria-labelledby=usage-heading]")
    assert "0 uses in the last 90 days" in usage.text, usage.text
    assert "No client IPs recorded yet." in usage.text
    assert "No uses in the last 90 days." in usage.text
