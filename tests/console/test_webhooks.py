"""Organization → Webhooks: an org admin adds an endpoint that points at a real HTTP
receiver on loopback (the test server allows private addresses), copies the signing secret
from the show-once dialog, sends a test message and sees its delivery, redelivers it to a
failing receiver and sees the failed attempt, pauses, resumes, edits and deletes the
endpoint. A
member gets 403 for every webhook page and action. axe-core runs on every page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows import cookie_header, create_token, create_user, open_workspace_tokens
from harness import Console, LatchkeyServer, http, publish_screenshots, wait_for

WEBHOOK_CONFIG = """
[webhooks]
allow_private_addresses = true
poll_interval_ms = 50
timeout_secs = 5
"""

MIA_PASSWORD = "mia's long passphrase 1"
# The picture docs/console.md shows from this file (LATCHKEY_UPDATE_DOCS_SCREENSHOTS=1).
DOC_SCREENSHOTS = ["webhooks-endpoint-failed-delivery-desktop"]


@pytest.fixture
def server(browser_ready):
    """The test server, with webhooks to loopback allowed and a fast delivery poll."""
    srv = LatchkeyServer(extra_config=WEBHOOK_CONFIG)
    try:
        yield srv
    finally:
        srv.stop()


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every request and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                         "body": body})
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/latchkey"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[dict]:
        with self.lock:
            return list(self.requests)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def verify(secret: str, request: dict) -> dict:
    """Checks a delivery's Standard Webhooks signature under `secret` and returns its body."""
    headers = request["headers"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    signatures = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
    assert expected in signatures, (headers, request["body"])
    return json.loads(request["body"])


def check_page(c: Console, name: str) -> None:
    """axe-core at desktop width and at 375 px, no sideways scrolling on the phone."""
    problems = []
    for mobile in (False, True):
        c.set_width(mobile)
        problems += [f"{name} ({'mobile' if mobile else 'desktop'}): {v}" for v in c.axe()]
        if mobile and c.overflows_horizontally():
            problems.append(f"{name} (mobile): scrolls sideways at 375 px")
        c.screenshot(f"webhooks-{name}-{'mobile' if mobile else 'desktop'}")
    c.set_width(False)
    assert not problems, "\n".join(problems)


def delivery_rows(c: Console) -> list[dict]:
    rows = []
    for row in c.driver.find_elements("css selector", "#deliveries table tbody tr"):
        cells = {td.get_attribute("data-label"): td.text.strip()
                 for td in row.find_elements("css selector", "th, td")}
        cells["id"] = row.get_attribute("id").removeprefix("delivery-")
        rows.append(cells)
    return rows


def wait_for_rows(c: Console, condition, message: str) -> list[dict]:
    """Refreshes the endpoint's page until its deliveries satisfy `condition`."""

    def refreshed():
        c.follow("Refresh")
        rows = delivery_rows(c)
        return rows if condition(rows) else None

    return wait_for(refreshed, 20, message)


def test_an_admin_adds_tests_redelivers_and_deletes_an_endpoint(server, admin, browsers, receiver):
    c = admin
    c.follow("Organization")
    c.follow("Webhooks")
    assert c.heading() == "Webhooks"
    assert c.link("Webhooks").get_attribute("aria-current") == "page"
    assert "No endpoints yet." in c.text()
    check_page(c, "empty")

    # Bad input: the page answers 422 with a message naming the field, and keeps the form.
    c.fill("Endpoint URL", "ftp://example.com/hook")
    c.check("token.created", True)
    c.fill("Description", "CI alerts")
    c.press("Add endpoint")
    assert c.banner().startswith("Endpoint URL:"), c.banner()
    assert c.field("Endpoint URL").get_attribute("value") == "ftp://example.com/hook"
    assert c.find("checkbox", "token.created").is_selected()
    assert c.field("Description").get_attribute("value") == "CI alerts"
    check_page(c, "failed-form")
    c.fill("Endpoint URL", receiver.url)
    c.check("token.created", False)
    c.press("Add endpoint")
    assert c.banner().startswith("Events:"), c.banner()
    failed = http("POST", server.url + "/organization/webhooks",
                  {**cookie_header(c), "Content-Type": "application/x-www-form-urlencoded",
                   "Sec-Fetch-Site": "same-origin"},
                  f"csrf_token={c.csrf()}&url=http%3A%2F%2Fexample.com%2F&events=token.nope")
    assert failed.status == 422 and "Events: Unknown event type." in failed.text, failed.text
    listed = http("GET", server.url + "/api/v1/webhooks", cookie_header(c))
    assert listed.status == 200 and listed.json()["items"] == [], listed.text

    # Add it: the signing secret shows once, in the dialog.
    c.fill("Endpoint URL", receiver.url)
    c.check("token.created", True)
    c.check("token.revoked", True)
    c.fill("Description", "CI <alerts> & more")
    c.press("Add endpoint")
    dialog = c.dialog()
    assert c.banner() == f"Webhook “{receiver.url}” created."
    secret = c.field("Signing secret", dialog).get_attribute("value")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32, secret
    assert c.field("Signing secret", dialog).get_attribute("readonly") is not None
    assert "will not be shown again" in dialog.text
    check_page(c, "secret-dialog")
    c.press("Copy to Clipboard", dialog)
    wait_for(lambda: c.clipboard() == secret, message="the secret on the clipboard")
    c.press("Done", dialog)
    assert c.no_dialog()
    assert secret not in c.driver.page_source
    assert c.heading() == receiver.url
    endpoint_path = c.path.split("?")[0]
    webhook_id = endpoint_path.rsplit("/", 1)[1]
    c.go(endpoint_path)
    assert secret not in c.driver.page_source
    for path in (endpoint_path, "/organization/webhooks", f"/api/v1/webhooks/{webhook_id}"):
        page = http("GET", server.url + path, cookie_header(c))
        assert page.status == 200 and secret not in page.text and "whsec_" not in page.text, path
    assert "No deliveries yet." in c.text()
    assert "CI <alerts> & more" in c.text()  # shown escaped
    assert not c.driver.find_elements("css selector", "alerts")

    # Send test: the receiver gets a signed webhook.test; the page shows it delivered.
    c.press("Send test")
    assert c.banner().startswith(f"Test message queued for “{receiver.url}”."), c.banner()
    first = wait_for(lambda: receiver.received(), 20, "the test message at the receiver")[0]
    assert first["path"] == "/hooks/latchkey"
    assert verify(secret, first)["type"] == "webhook.test"
    rows = wait_for_rows(c, lambda rows: rows and rows[0]["State"] == "Delivered", "a delivered row")
    assert len(rows) == 1
    assert rows[0]["Event"].startswith("webhook.test")
    assert first["headers"]["webhook-id"] in rows[0]["Event"]
    assert rows[0]["Attempts"] == "1" and rows[0]["Last status"] == "200", rows
    assert rows[0]["Next attempt"] == "—"
    check_page(c, "endpoint")

    # Redeliver to a receiver that now fails: a new delivery of the same message, with
    # its failed attempt, its status and when it is tried next.
    receiver.status = 503
    c.press(f"Redeliver webhook.test {first['headers']['webhook-id']}")
    assert c.banner() == "Delivery of webhook.test queued again.", c.banner()
    wait_for(lambda: len(receiver.received()) == 2, 20, "the redelivery at the receiver")
    again = receiver.received()[1]
    assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"]
    verify(secret, again)
    rows = wait_for_rows(c, lambda rows: len(rows) == 2 and rows[0]["Last status"].startswith("503"),
                         "the failed redelivery")
    assert rows[0]["State"] == "Pending" and rows[0]["Attempts"] == "1", rows
    assert rows[1]["State"] == "Delivered"
    row = c.driver.find_element("css selector", f"#delivery-{rows[0]['id']}")
    next_at = row.find_element("css selector", "td[data-label='Next attempt'] time").get_attribute("datetime")
    queued_at = row.find_element("css selector", "td[data-label='Queued'] time").get_attribute("datetime")
    assert next_at > queued_at, (next_at, queued_at)  # RFC 3339 UTC instants sort as text
    row.find_element("css selector", "summary").click()
    assert "HTTP 503" in row.text, row.text
    check_page(c, "endpoint-failed-delivery")
    receiver.status = 200

    # A real event: a token created in the console reaches the endpoint.
    open_workspace_tokens(c)
    create_token(c, "hooked-token")
    created = wait_for(
        lambda: [r for r in receiver.received() if json.loads(r["body"])["type"] == "token.created"],
        20, "token.created at the receiver")
    event = verify(secret, created[0])
    assert event["data"]["token"]["name"] == "hooked-token"
    assert "lkp_" not in json.dumps(event["data"]["token"].get("secret", ""))
    c.go(endpoint_path)
    rows = wait_for_rows(c, lambda rows: any(r["Event"].startswith("token.created") for r in rows),
                         "the token.created delivery")

    # Pause and resume.
    c.press("Pause")
    assert c.banner() == f"Webhook “{receiver.url}” paused. No new messages are queued for it."
    assert "Paused" in c.text()
    c.go("/organization/webhooks")
    assert "Paused" in c.driver.find_element("css selector", f"#webhook-{webhook_id}").text
    c.follow(receiver.url)
    c.press("Resume")
    assert c.banner() == f"Webhook “{receiver.url}” resumed."
    assert c.has("button", "Pause")

    # Edit: the form holds the endpoint's values; a refusal keeps what was typed.
    assert c.field("Endpoint URL").get_attribute("value") == receiver.url
    assert c.find("checkbox", "token.created").is_selected()
    assert not c.find("checkbox", "user.deactivated").is_selected()
    c.check("token.created", False)
    c.check("token.revoked", False)
    c.fill("Description", "CI alerts v2")
    c.press("Save changes")
    assert c.banner().startswith("Events:"), c.banner()
    assert c.field("Description").get_attribute("value") == "CI alerts v2"
    check_page(c, "edit-refused")
    c.check("user.deactivated", True)
    c.press("Save changes")
    assert c.banner() == f"Webhook “{receiver.url}” saved.", c.banner()
    assert "CI alerts v2" in c.text()
    hook = http("GET", f"{server.url}/api/v1/webhooks/{webhook_id}", cookie_header(c)).json()
    assert hook["events"] == ["user.deactivated"] and hook["description"] == "CI alerts v2", hook

    # A member: no Organization link, 403 for every page and every action.
    create_user(c, "mia", MIA_PASSWORD)
    mia = browsers()
    mia.sign_in("mia", MIA_PASSWORD)
    assert not mia.has("link", "Organization")
    for path in ("/organization/webhooks", endpoint_path):
        mia.go(path)
        assert mia.heading() == "Not allowed", path
        assert not mia.has("link", "Webhooks")
        page = http("GET", server.url + path, cookie_header(mia))
        assert page.status == 403 and receiver.url not in page.text, path
    mia.go("/workspaces")
    form = {**cookie_header(mia), "Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
    for action in ("delete", "pause", "edit", "test", f"deliveries/{rows[0]['id']}/redeliver"):
        refused = http("POST", f"{server.url}{endpoint_path}/{action}", form, f"csrf_token={mia.csrf()}")
        assert refused.status == 403, (action, refused.status)
    refused = http("POST", f"{server.url}/organization/webhooks", form,
                   f"csrf_token={mia.csrf()}&url=http%3A%2F%2Fexample.com%2F&events=token.created")
    assert refused.status == 403
    assert http("GET", f"{server.url}/api/v1/webhooks/{webhook_id}", cookie_header(c)).json()["enabled"]

    # Delete, after confirming.
    c.go(endpoint_path)
    c.press("Delete")
    box = c.dialog("alertdialog")
    assert receiver.url in box.text
    c.confirm("Delete")
    assert c.banner() == f"Webhook “{receiver.url}” deleted.", c.banner()
    assert c.heading() == "Webhooks"
    assert "No endpoints yet." in c.text()
    assert http("GET", f"{server.url}/api/v1/webhooks/{webhook_id}", cookie_header(c)).status == 404
    c.go(endpoint_path)
    assert c.heading() == "Not found"
    publish_screenshots(DOC_SCREENSHOTS)
