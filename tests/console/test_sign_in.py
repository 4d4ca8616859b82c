"""Signing in and out, one message for every failure, and returning after an ended session."""

from __future__ import annotations

from flows import cookie_header
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
