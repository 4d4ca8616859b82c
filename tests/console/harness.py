"""Harness for the console's browser tests.

`LatchkeyServer` runs the real `latchkey` binary on 127.0.0.1:0 over a temporary data
directory and waits for its `latchkey listening address=…` log line. `Console` drives
headless Chromium through chromedriver and finds every control by its accessible name, as
a screen-reader user or DESIGN.md §5 names it. `http` is a tiny stdlib HTTP client for the
API side of each flow (and for requests a browser would never make).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LATCHKEY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LATCHKEY_CHROMEDRIVER", "/usr/bin/chromedriver")
AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "target" / "console-screenshots"
ADMIN_PASSWORD = "correct horse battery staple"
API_KEY_HEADER = "rime-api-key"
TOKEN_RE = re.compile(r"^lk[plcfa]_[0-9A-Za-z]{38}$")

TEST_CONFIG = """
api_key_headers = ["rime-api-key"]

[passwords]
memory_kib = 64
iterations = 1

[throttle]
sign_in_attempts = {sign_in_attempts}
failed_token_checks = 100000
"""


def binary() -> Path:
    return Path(os.environ.get("LATCHKEY_BIN", ROOT / "target" / "debug" / "latchkey"))


class LatchkeyServer:
    """The real binary on a random port, over a fresh data directory."""

    def __init__(self, sign_in_attempts: int = 1000, extra_config: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="latchkey-console-"))
        config = self.dir / "latchkey.toml"
        config.write_text(TEST_CONFIG.format(sign_in_attempts=sign_in_attempts) + extra_config)
        env = dict(os.environ)
        env.update(
            {
                "LATCHKEY_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "LATCHKEY_CONFIG": str(config),
                "RUST_LOG": "info",
                "NO_COLOR": "1",
            }
        )
        for key in ("LATCHKEY_URL", "LATCHKEY_API_KEY", "LATCHKEY_DATABASE_URL", "LATCHKEY_LISTEN"):
            env.pop(key, None)
        self.stderr_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.process = subprocess.Popen(
            [str(binary()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.dir / "data")],
            stdout=self._stdout,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.url = self._wait_listening()

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + 60
        pattern = re.compile(r"latchkey listening.*?address=(127\.0\.0\.1:\d+)")
        while time.monotonic() < deadline:
            text = self.stderr_path.read_text(errors="replace")
            match = pattern.search(text)
            if match:
                return f"http://{match.group(1)}"
            if self.process.poll() is not None:
                raise RuntimeError(f"latchkey exited early:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("latchkey did not start within 60 s:\n" + self.stderr_path.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._stderr.close()
        self._stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(method: str, url: str, headers: dict[str, str] | None = None, body: bytes | str | None = None) -> Reply:
    """One request, redirects not followed."""
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read(),
                         resp.headers.get_all("Set-Cookie") or [])
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read(),
                     err.headers.get_all("Set-Cookie") or [])


def api_create_project(base: str, token: str, name: str = "From the console test") -> Reply:
    """`POST /projects` with the token in the `rime-api-key` header, as the issue's client does."""
    return http(
        "POST",
        f"{base}/projects",
        {API_KEY_HEADER: token, "Content-Type": "application/json"},
        json.dumps({"name": name, "description": "This is an Onboarding Demo"}),
    )


def wait_for(condition, timeout: float = 10.0, message: str = "condition"):
    """Polls `condition` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling on transient DOM errors
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


def publish_screenshots(names: list[str]) -> None:
    """With LATCHKEY_UPDATE_DOCS_SCREENSHOTS=1, copies the named screenshots to
    docs/console-screenshots/ (the pictures docs/console.md shows)."""
    if os.environ.get("LATCHKEY_UPDATE_DOCS_SCREENSHOTS") != "1":
        return
    target = ROOT / "docs" / "console-screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(SCREENSHOTS / f"{name}.png", target / f"{name}.png")


def browser_available() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not Path(path).exists():
            return f"{what} not found at {path} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is not installed (pip install -r tests/console/requirements.txt)"
    if not AXE_JS.exists():
        return f"axe-core not found at {AXE_JS} (npm install --prefix tests/console axe-core)"
    if not binary().exists():
        return f"latchkey binary not found at {binary()} (cargo build -p latchkey-cli)"
    return None


class Console:
    """One headless Chromium, driven by accessible names."""

    DESKTOP = (1280, 900)
    MOBILE = (375, 812)

    def __init__(self, base: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base = base
        self.profile = tempfile.mkdtemp(prefix="latchkey-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.DESKTOP[0]},{self.DESKTOP[1]}",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        self.driver.set_script_timeout(60)
        self.driver.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # Navigation and reading

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_for(lambda: self.driver.execute_script("return document.readyState") == "complete",
                 message="page load")

    @property
    def path(self) -> str:
        url = self.driver.current_url
        return url[len(self.base):] if url.startswith(self.base) else url

    def text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    def heading(self) -> str:
        return self.driver.find_element("css selector", "main h1").text

    def banner(self) -> str:
        found = self.driver.find_elements("css selector", "main .banner")
        return found[0].text if found else ""

    # Finding by accessible name

    def _named(self, css: str, name: str, scope=None, exact: bool = True):
        root = scope or self.driver
        for element in root.find_elements("css selector", css):
            if not element.is_displayed():
                continue
            label = (element.accessible_name or "").strip()
            if label == name or (not exact and label.startswith(name)):
                return element
        return None

    def find(self, kind: str, name: str, scope=None, timeout: float = 10.0):
        css = {
            "button": "button, input[type=submit], input[type=button], [role=button]",
            "link": "a[href]",
            "field": "input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea",
            "checkbox": "input[type=checkbox]",
            "heading": "h1, h2, h3",
        }[kind]
        return wait_for(lambda: self._named(css, name, scope), timeout, f"{kind} named {name!r}")

    def has(self, kind: str, name: str, scope=None) -> bool:
        css = {
            "button": "button, input[type=submit]",
            "link": "a[href]",
            "field": "input:not([type=hidden]), select, textarea",
            "checkbox": "input[type=checkbox]",
            "heading": "h1, h2, h3",
        }[kind]
        return self._named(css, name, scope) is not None

    def button(self, name: str, scope=None):
        return self.find("button", name, scope)

    def link(self, name: str, scope=None):
        return self.find("link", name, scope)

    def field(self, name: str, scope=None):
        return self.find("field", name, scope)

    _NAVIGATES = """
        const el = arguments[0];
        if (el.matches('a[href]')) return true;
        if (el.id === 'confirm-ok') return true;
        const form = el.form;
        if (!form || el.type !== 'submit') return false;
        return !form.hasAttribute('data-confirm') && !form.hasAttribute('data-reveal-copy')
            && form.id !== 'secret-done-form';
    """

    def click(self, kind: str, name: str, scope=None) -> None:
        """Clicks a control; when it loads a page, waits for the new page."""
        from selenium.common.exceptions import StaleElementReferenceException

        element = self.find(kind, name, scope)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        navigates = self.driver.execute_script(self._NAVIGATES, element)
        old_page = self.driver.find_element("tag name", "html")
        element.click()
        if navigates:
            def replaced():
                try:
                    old_page.tag_name
                    return False
                except StaleElementReferenceException:
                    return True

            wait_for(replaced, 15, f"the page after {name!r}")
        self.wait_ready()

    def press(self, name: str, scope=None) -> None:
        self.click("button", name, scope)

    def follow(self, name: str) -> None:
        self.click("link", name)

    def fill(self, label: str, value: str) -> None:
        element = self.field(label)
        element.clear()
        element.send_keys(value)

    def choose(self, label: str, value: str) -> None:
        from selenium.webdriver.support.select import Select

        Select(self.field(label)).select_by_value(value)

    def options(self, label: str) -> list[tuple[str, str]]:
        from selenium.webdriver.support.select import Select

        return [(o.get_attribute("value"), o.text) for o in Select(self.field(label)).options]

    def check(self, label: str, on: bool) -> None:
        box = self.find("checkbox", label)
        if box.is_selected() != on:
            box.click()

    def dialog(self, role: str = "dialog", timeout: float = 10.0):
        def open_dialog():
            for element in self.driver.find_elements("css selector", f"[role={role}]"):
                if element.is_displayed():
                    return element
            return None

        return wait_for(open_dialog, timeout, f"an open {role}")

    def no_dialog(self, role: str = "dialog") -> bool:
        return not any(e.is_displayed() for e in self.driver.find_elements("css selector", f"[role={role}]"))

    def confirm(self, verb: str) -> None:
        """Confirms an in-page alert dialog by its verb button."""
        box = self.dialog("alertdialog")
        self.press(verb, box)

    def row(self, name: str):
        """The table row whose row header is `name`."""

        def find_row():
            for row in self.driver.find_elements("css selector", "table tbody tr"):
                headers = row.find_elements("css selector", "th[scope=row]")
                if headers and headers[0].text.strip() == name:
                    return row
            return None

        return wait_for(find_row, 10, f"row {name!r}")

    def rows(self) -> list[str]:
        return [h.text.strip() for h in self.driver.find_elements("css selector", "table tbody th[scope=row]")]

    # Session

    def sign_in(self, username: str, password: str = ADMIN_PASSWORD, path: str = "/login") -> None:
        self.go(path)
        self.fill("Username", username)
        self.fill("Password", password)
        self.press("Sign in")

    def session_cookie(self) -> str | None:
        cookie = self.driver.get_cookie("latchkey_session")
        return cookie["value"] if cookie else None

    def csrf(self) -> str:
        return self.driver.find_element("css selector", "input[name=csrf_token]").get_attribute("value")

    def clipboard(self) -> str:
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, e => done('clipboard error: ' + e));"
        )

    def alert_present(self) -> bool:
        from selenium.common.exceptions import NoAlertPresentException

        try:
            self.driver.switch_to.alert
            return True
        except NoAlertPresentException:
            return False

    # Accessibility and looks

    def axe(self) -> list[dict]:
        """Serious and critical axe-core violations on the current page."""
        if not self.driver.execute_script("return typeof window.axe === 'object'"):
            self.driver.execute_script(AXE_JS.read_text())
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations), e => done({error: String(e)}));"
        )
        if isinstance(result, dict):
            raise AssertionError(f"axe-core failed: {result}")
        return [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]][:5],
            }
            for v in result
            if v.get("impact") in ("serious", "critical")
        ]

    def set_width(self, mobile: bool) -> None:
        if mobile:
            self.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": self.MOBILE[0], "height": self.MOBILE[1], "deviceScaleFactor": 1, "mobile": True},
            )
        else:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def overflows_horizontally(self) -> bool:
        return bool(self.driver.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1"))

    def screenshot(self, name: str) -> Path:
        """A full-page PNG under target/console-screenshots/."""
        import base64

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if self.driver.execute_script("return document.querySelector('dialog[open]') !== null"):
            # A modal dialog: what the person sees is the viewport.
            self.driver.execute_script("window.scrollTo(0, 0)")
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        else:
            metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
            )
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
