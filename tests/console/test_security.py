"""CSRF, XSS and the console's headers."""

from __future__ import annotations

import re

from flows import cookie_header, create_token, open_workspace_tokens
from harness import http

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Sent as the console's own page would (same-origin), so what refuses is the CSRF check.
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}


def tokens_url(c) -> str:
    open_workspace_tokens(c)
    return c.driver.current_url.split("?")[0]


def test_every_state_changing_form_needs_the_csrf_token(server, admin):
    c = admin
    url = tokens_url(c)
    csrf = c.csrf()
    cookie = cookie_header(c)

    missing = http("POST", url, {**cookie, **FORM}, "name=forged&type=personal")
    assert missing.status == 403
    assert "did not come from this Latchkey page" in missing.text
    wrong = http("POST", url, {**cookie, **FORM}, "name=forged&type=personal&csrf_token=" + "0" * 64)
    assert wrong.status == 403
    other_session = http("POST", url, {**cookie, **FORM},
                         "name=forged&type=personal&csrf_token=" + csrf[:-1] + ("0" if csrf[-1] != "0" else "1"))
    assert other_session.status == 403
    # The right token but from another site: refused by the origin check.
    cross = http("POST", url, {**cookie, **FORM, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                 f"name=forged&type=personal&csrf_token={csrf}")
    assert cross.status == 403
    # And with neither Origin nor Sec-Fetch-Site (no browser would send a cookie so).
    bare = http("POST", url, {**cookie, "Content-Type": "application/x-www-form-urlencoded"},
                f"name=forged&type=personal&csrf_token={csrf}")
    assert bare.status == 403
    c.driver.refresh()
    c.wait_ready()
    assert "forged" not in c.rows()

    # The field or the X-CSRF-Token header, from our own origin, works.
    by_header = http("POST", url, {**cookie, **FORM, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"},
                     "name=scripted&type=personal")
    assert by_header.status == 200
    assert by_header.headers["cache-control"] == "no-store"
    secret = re.search(r'id="secret-token"[^>]*value="(lkp_[0-9A-Za-z]{38})"', by_header.text)
    assert secret, by_header.text[:2000]

    # Sign-out and the other action routes check it too.
    assert http("POST", server.url + "/logout", {**cookie, **FORM}, "").status == 403
    row_action = c.driver.find_element("css selector", "form[action$='/revoke']").get_attribute("action")
    assert http("POST", row_action, {**cookie, **FORM}, "").status == 403
    settings = http("POST", server.url + "/organization/token-settings", {**cookie, **FORM},
                    "token_creators=admins")
    assert settings.status == 403
    assert http("GET", server.url + "/api/v1/me", cookie).status == 200


def test_names_are_shown_as_text_never_run(server, admin):
    c = admin
    evil = "<script>alert(1)</script>"
    c.go("/workspaces")
    c.press("New workspace")
    c.fill("Workspace name", evil)
    c.press("Create workspace")
    assert c.heading() == evil
    assert not c.alert_present()
    c.go("/workspaces")
    assert c.has("link", evil)
    c.follow(evil)
    c.follow("Settings")
    c.follow("API Access Tokens")
    create_token(c, evil)
    assert not c.alert_present()
    assert evil in c.rows()
    assert c.has("button", f"Revoke {evil}")
    source = c.driver.page_source
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in source
    scripts = c.driver.find_elements("css selector", "script")
    assert [s.get_attribute("src").split("?")[0].rsplit("/", 1)[-1] for s in scripts] == ["app.js"]
    raw = http("GET", c.driver.current_url, cookie_header(c)).text
    where = raw.find(evil)
    assert where < 0, raw[max(0, where - 400):where + 100]
    assert "&#60;script&#62;alert(1)&#60;/script&#62;" in raw


def test_console_headers_and_cookie(server, admin):
    c = admin
    cookie = cookie_header(c)
    ws_tokens = tokens_url(c)
    pages = ["/login", "/workspaces", "/account", "/api-access", "/organization/users",
             "/organization/token-settings", "/organization/instance", "/organization/audit",
             "/organization/webhooks",
             ws_tokens[len(server.url):]]
    for path in pages:
        reply = http("GET", server.url + path, {} if path == "/login" else cookie)
        assert reply.status == 200, (path, reply.status)
        assert reply.headers["content-security-policy"] == CSP, path
        assert reply.headers["content-type"].startswith("text/html"), path
        assert reply.headers["cache-control"] == "no-store", path
        assert reply.headers["x-frame-options"] == "DENY", path
        assert "<script>" not in reply.text and " on" + "click=" not in reply.text, path
        assert 'style="' not in reply.text, path
    for asset, kind in (("/assets/app.js", "text/javascript"), ("/assets/app.css", "text/css")):
        reply = http("GET", server.url + asset)
        assert reply.status == 200 and reply.headers["content-type"].startswith(kind)
        assert "max-age=31536000" in reply.headers["cache-control"]
    # Pages that need a session send the browser to sign in, keeping where it was going.
    reply = http("GET", server.url + "/organization/audit?workspace=x")
    assert reply.status == 303
    assert reply.headers["location"] == "/login?next=/organization/audit%3Fworkspace%3Dx"


def test_secrets_never_travel_in_urls_or_redirects(server, admin):
    c = admin
    url = tokens_url(c)
    csrf = c.csrf()
    created = http("POST", url, {**cookie_header(c), **FORM, "Sec-Fetch-Site": "same-origin"},
                   f"name=direct&type=client&csrf_token={csrf}")
    assert created.status == 200  # rendered in the POST's answer, not redirected
    assert "location" not in created.headers
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r'value="(lkc_[0-9A-Za-z]{38})"', created.text).group(1)
    assert created.text.count(secret) == 1  # only in the dialog's field
    page = http("GET", url, cookie_header(c))
    assert secret not in page.text
    create_token(c, "in-browser")
    assert "lk" not in c.path.split("?")[-1]
