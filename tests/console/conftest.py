"""Fixtures for the console's browser tests: a fresh server per test, and browsers.

Without Chromium, chromedriver, selenium, axe-core or the binary the tests print why and
skip — unless LATCHKEY_TEST_REQUIRE_ALL=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Console, LatchkeyServer, browser_available  # noqa: E402

REQUIRE_ALL = os.environ.get("LATCHKEY_TEST_REQUIRE_ALL") == "1"


@pytest.fixture(scope="session")
def browser_ready():
    reason = browser_available()
    if reason:
        message = f"console browser tests cannot run: {reason}"
        print(message, file=sys.stderr)
        if REQUIRE_ALL:
            pytest.fail(message + " (LATCHKEY_TEST_REQUIRE_ALL=1)", pytrace=False)
        pytest.skip(message)
    return True


@pytest.fixture
def server(browser_ready):
    srv = LatchkeyServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def browsers(server):
    """A factory of browsers (each with its own profile, so its own session)."""
    opened: list[Console] = []

    def open_browser() -> Console:
        console = Console(server.url)
        opened.append(console)
        return console

    try:
        yield open_browser
    finally:
        for console in opened:
            console.quit()


@pytest.fixture
def browser(browsers):
    return browsers()


@pytest.fixture
def admin(browser):
    """A browser signed in as the bootstrap administrator."""
    browser.sign_in("admin")
    assert browser.heading() == "Workspaces", browser.text()
    return browser
