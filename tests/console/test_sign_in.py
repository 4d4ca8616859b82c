"""Signing in and out, one message for every failure, and returning after an ended session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flows import cookie_header, open_form, read_dialog_secret
from harness import Console, LatchkeyServer, http


def test_one_message_for_any_failure_then_sign_in_and_out(server, browser):
    c = browser
    c.go("/")
    assert c.path.startswith("/login")
    assert c.heading() == "Sign in"

    c.sign_in("admin", "wrong password")
    wrong_password = c.banner()
    c.sign_in("nobody-here", "whatever")
    unknown_user = c.banner()
    assert wrong_password == unknown_user == "Invalid username or password."

    c.sign_in("admin")
    assert c.path == "/workspaces"
    assert c.heading() == "Workspaces"
    assert c.has("link", "Workspace 1")
    for name in ("Workspaces", "Account & Settings", "Organization", "API access"):
        assert c.has("link", name), name
    assert c.has("button", "Sign out")

    cookie = c.driver.get_cookie("latchkey_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    old = cookie_header(c)
    assert http("GET", server.url + "/api/v1/me", old).status == 200

    c.press("Sign out")
    assert c.path.startswith("/login")
    assert "signed out" in c.banner()
    # The session ended for good: the old cookie no longer works anywhere.
    assert http("GET", server.url + "/api/v1/me", old).status == 401
    page = http("GET", server.url + "/workspaces", old)
    assert page.status == 303 and page.headers["location"].startswith("/login")
    c.go("/workspaces")
    assert c.path.startswith("/login?next=%2Fworkspaces") or c.path.startswith("/login?next=/workspaces")


def test_ended_session_goes_to_sign_in_and_back_to_the_page(server, browser):
    c = browser
    c.sign_in("admin")
    c.go("/account")
    assert c.heading() == "Account & Settings"
    # The session ends behind the browser's back (as when it expires).
    assert http("DELETE", server.url + "/api/v1/session",
                {**cookie_header(c), "Sec-Fetch-Site": "same-origin"}).status == 204
    c.go("/organization/token-settings")
    assert c.path.startswith("/login?next=")
    assert "Your session has ended" in c.banner()
    c.fill("Username", "admin")
    c.fill("Password", "correct horse battery staple")
    c.press("Sign in")
    assert c.path == "/organization/token-settings"
    assert c.heading() == "Access Token Settings"


def test_next_accepts_only_same_site_paths(server, browser):
    c = browser
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        c.go("/login?next=" + target)
        c.fill("Username", "admin")
        c.fill("Password", "correct horse battery staple")
        c.press("Sign in")
        assert c.driver.current_url.startswith(server.url), c.driver.current_url
        assert c.path == "/workspaces"
        c.press("Sign out")
    c.sign_in("admin", path="/login?next=/account")
    assert c.path == "/account"


def test_cross_site_sign_in_is_refused(server):
    refused = http(
        "POST",
        server.url + "/login",
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example",
         "Sec-Fetch-Site": "cross-site"},
        "username=admin&password=correct+horse+battery+staple",
    )
    assert refused.status == 403
    assert "not sent from this Latchkey site" in refused.text
    assert not any("latchkey_session=lks_" in c for c in refused.set_cookies)
    same_site = http(
        "POST",
        server.url + "/login",
        {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"},
        "username=admin&password=correct+horse+battery+staple&next=/account",
    )
    assert same_site.status == 303 and same_site.headers["location"] == "/account"
    cookie = next(c for c in same_site.set_cookies if c.startswith("latchkey_session=lks_"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_sign_in_is_throttled_with_a_readable_message(browser_ready):
    server = LatchkeyServer(sign_in_attempts=3)
    try:
        c = Console(server.url)
        try:
            for _ in range(3):
                c.sign_in("admin", "wrong password")
                assert c.banner() == "Invalid username or password."
            c.sign_in("admin")
            assert c.banner().startswith("Too many sign-in attempts. Try again in"), c.banner()
            assert c.path.startswith("/login")
        finally:
            c.quit()
    finally:
        server.stop()


def test_a_form_sent_after_the_session_ended_changes_nothing_and_comes_back(server, browser):
    """A form posted without a live session (ended on the server, or the cookie gone) lands
    on the sign-in page with `next=` its own page and a message, never a raw error; signing
    in brings the person back there, and nothing the form asked for was done."""
    c = browser
    c.sign_in("admin")
    place = "/workspaces/Workspace%201/settings/tokens?q=keep&sort=name"

    def expect_sign_in_page() -> str:
        assert c.heading() == "Sign in", c.text()
        assert c.banner() == ("Your session ended before the form was sent, so nothing was "
                              "changed. Sign in again to go back to the page.")
        assert "{" not in c.text() and "error" not in c.text().lower()
        assert not c.find("field", "Password").get_attribute("value")
        query = parse_qs(urlsplit(c.path).query)
        return query["next"][0]

    # 1. The session ends on the server while the New token form is filled in.
    c.go(place)
    open_form(c)
    c.fill("Token Name", "keep-after-expiry")
    assert http("DELETE", server.url + "/api/v1/session",
                {**cookie_header(c), "Sec-Fetch-Site": "same-origin"}).status == 204
    c.press("Create Token")
    assert c.no_dialog()
    back = expect_sign_in_page()
    # Back to the list (which addresses its workspace by id), search and sort kept.
    assert back.startswith("/workspaces/") and "/settings/tokens?" in back, back
    assert "q=keep" in back and "sort=name" in back, back
    c.fill("Username", "admin")
    c.fill("Password", "correct horse battery staple")
    c.press("Sign in")
    assert c.path == back
    assert c.heading() == "API Access Tokens"
    assert c.field("Search tokens").get_attribute("value") == "keep"
    listed = http("GET", server.url + "/api/v1/workspaces/Workspace%201/tokens?limit=200", cookie_header(c))
    assert "keep-after-expiry" not in [t["name"] for t in listed.json()["items"]]

    # 2. The cookie is gone (cleared, or expired in the browser) when a row action is sent.
    open_form(c)
    c.fill("Token Name", "keep-me")
    c.press("Create Token")
    read_dialog_secret(c)
    c.driver.delete_cookie("latchkey_session")
    c.press("Revoke keep-me")
    c.confirm("Revoke")
    back = expect_sign_in_page()
    assert "q=keep" in back
    c.fill("Username", "admin")
    c.fill("Password", "correct horse battery staple")
    c.press("Sign in")
    assert c.path == back
    assert "Active" in c.row("keep-me").text
    assert c.has("button", "Revoke keep-me")
