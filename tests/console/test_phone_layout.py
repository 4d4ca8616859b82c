"""The token pages on a 375 px phone (issue 22), measured in a real Chromium: on the list,
a token's own page and the New token form, every scope chip lies inside its value column
(right of the label column, inside the card), every state pill and badge is as wide as its
text and padding (not stretched to its column), and nothing makes the page scroll
sideways. Screenshots at 375 px and at desktop width go to target/console-screenshots/
(and to docs/console-screenshots/ with LATCHKEY_UPDATE_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

from flows import cookie_header, open_workspace_tokens, seed_token
from harness import Console, api_create_project, http, publish_screenshots

WIDTH = 375

DOC_SCREENSHOTS = [
    "token-list-layout-mobile",
    "token-detail-mobile",
    "token-detail-desktop",
    "token-form-layout-mobile",
    "token-list-layout-desktop",
]

# Measures the page; answers a list of what is wrong (empty: the layout holds).
GEOMETRY = r"""
const W = arguments[0];
const problems = [];
const box = e => e.getBoundingClientRect();
const shown = e => { const r = box(e); return r.width > 0 && r.height > 0; };
const where = e => (e.closest('tr, dl > div, fieldset, .field') || e).textContent.trim().slice(0, 60);
const doc = document.documentElement;
if (doc.scrollWidth > W) problems.push(`page is ${doc.scrollWidth}px wide`);
if (window.innerWidth !== W) problems.push(`viewport is ${window.innerWidth}px`);
// Nothing a person sees sticks out of the viewport.
for (const e of document.querySelectorAll('main *')) {
  if (e.closest('thead, .visually-hidden, option') || !shown(e)) continue;
  const r = box(e);
  if (r.right > W + 0.5 || r.left < -0.5)
    problems.push(`${e.tagName}.${e.className} [${r.left.toFixed(1)}, ${r.right.toFixed(1)}] in "${where(e)}"`);
}
// Chips: inside the value column, right of the label column, inside the card.
for (const chip of document.querySelectorAll('main .scope')) {
  if (!shown(chip)) continue;
  const value = chip.closest('.cell, dd');
  const holder = chip.closest('td, th, dl > div');
  const card = chip.closest('tr, .card');
  const c = box(chip), v = box(value), h = box(holder), k = box(card);
  let labelEdge;
  if (holder.matches('dl > div')) {
    labelEdge = box(holder.querySelector('dt')).right;
  } else {
    labelEdge = h.left + 90;  // the ::before label column is 6.5rem wide
  }
  if (c.left < v.left - 0.5 || c.right > v.right + 0.5)
    problems.push(`chip "${chip.textContent}" [${c.left}, ${c.right}] outside its value column [${v.left}, ${v.right}]`);
  if (c.left < labelEdge - 0.5)
    problems.push(`chip "${chip.textContent}" starts at ${c.left}, in the label column (ends ${labelEdge})`);
  if (c.right > k.right + 0.5 || c.right > h.right + 0.5)
    problems.push(`chip "${chip.textContent}" leaves its card`);
}
// Pills and badges: as wide as their text plus padding and border, one line.
for (const pill of document.querySelectorAll('main .state, main .badge')) {
  if (!shown(pill)) continue;
  const s = getComputedStyle(pill);
  const range = document.createRange();
  range.selectNodeContents(pill);
  const text = range.getBoundingClientRect().width;
  const extra = ['paddingLeft', 'paddingRight', 'borderLeftWidth', 'borderRightWidth']
    .reduce((n, k) => n + parseFloat(s[k]), 0);
  const p = box(pill);
  if (p.width > text + extra + 1)
    problems.push(`pill "${pill.textContent}" is ${p.width}px for ${text}px of text and ${extra}px of padding`);
  if (p.height > parseFloat(s.lineHeight || s.fontSize) * 1.6 + parseFloat(s.paddingTop) + parseFloat(s.paddingBottom) + 2)
    problems.push(`pill "${pill.textContent}" wraps (${p.height}px high)`);
  const value = pill.closest('.cell, dd');
  if (value && (p.left < box(value).left - 0.5 || p.right > box(value).right + 0.5))
    problems.push(`pill "${pill.textContent}" outside its value column`);
}
return problems;
"""

LONG_PROJECT = "Fraud detection pipeline for the north-western region (staging copy)"


def measure(c: Console, what: str, expect_chips: bool = True) -> None:
    counts = c.driver.execute_script(
        "return [document.querySelectorAll('main .scope').length,"
        " document.querySelectorAll('main .state, main .badge').length]")
    if expect_chips:
        assert counts[0] > 0, f"{what}: no chips to measure"
    problems = c.driver.execute_script(GEOMETRY, WIDTH)
    assert not problems, f"{what} at {WIDTH} px:\n" + "\n".join(problems)
    found = c.axe()
    assert not found, f"{what} at {WIDTH} px: {found}"


def test_token_pages_hold_their_layout_at_375_px(server, admin):
    c = admin
    base = server.url
    admin_token = seed_token(c, {"name": "deploy-bot-with-a-rather-long-name-for-a-phone", "type": "admin"})
    project = api_create_project(base, admin_token["token"], LONG_PROJECT)
    assert project.status == 201, project.text
    bound = seed_token(c, {
        "name": "ingest-client",
        "type": "client",
        "expires_in_days": 4,
        "projects": [project.json()["id"]],
        "environment": "production-eu-west-1-with-a-long-suffix",
    })
    seed_token(c, {"name": "web-client", "type": "client", "expires_in_days": 5})

    open_workspace_tokens(c)
    c.set_width(True)
    c.driver.refresh()
    c.wait_ready()
    measure(c, "token list")
    # The row with the most scopes wraps them onto several lines, in the value column.
    tops = c.driver.execute_script(
        "const row = document.getElementById(arguments[0]);"
        "return [...row.querySelectorAll('.scope')].map(e => Math.round(e.getBoundingClientRect().top));",
        f"token-{admin_token['id']}")
    assert len(set(tops)) > 1, tops
    c.screenshot("token-list-layout-mobile")

    # A token's own page, from its name in the list.
    c.follow("ingest-client")
    assert c.heading() == "ingest-client"
    assert c.path.startswith("/workspaces/") and c.path.endswith(f"/settings/tokens/{bound['id']}"), c.path
    text = c.text()
    assert LONG_PROJECT in text and "production-eu-west-1-with-a-long-suffix" in text
    assert "Expires soon" in text and "in 4 days" in text
    measure(c, "a token's page")
    c.screenshot("token-detail-mobile")
    c.go(f"/workspaces/Workspace%201/settings/tokens/{admin_token['id']}")
    measure(c, "the admin token's page")

    # The form, with every scope checkbox and the expiry presets.
    c.go("/workspaces/Workspace%201/settings/tokens?new=1")
    assert c.has("field", "Token Name")
    measure(c, "New token form", expect_chips=False)
    c.screenshot("token-form-layout-mobile")

    # At desktop width nothing scrolls sideways either.
    c.set_width(False)
    c.go(f"/workspaces/Workspace%201/settings/tokens/{bound['id']}")
    assert not c.overflows_horizontally()
    c.screenshot("token-detail-desktop")
    c.go("/workspaces/Workspace%201/settings/tokens")
    assert not c.overflows_horizontally()
    c.screenshot("token-list-layout-desktop")

    publish_screenshots(DOC_SCREENSHOTS)


def test_a_token_page_answers_for_its_own_list_only(server, admin):
    c = admin
    base = server.url
    token = seed_token(c, {"name": "only-here", "type": "client"})
    c.go(f"/workspaces/Workspace%201/settings/tokens/{token['id']}")
    assert c.heading() == "only-here"
    # Actions return to the list, at the row, naming the token.
    c.press("Revoke only-here")
    c.confirm("Revoke")
    assert c.banner() == "Token “only-here” revoked. It stops working at once."
    assert c.path.startswith("/workspaces/") and "/settings/tokens?done=revoked" in c.path, c.path
    assert c.driver.execute_script("return location.hash") == f"#token-{token['id']}"
    # Under another list (Account & Settings: my own tokens only), or an id that is not a
    # token, the page is not found, readable, with the navigation.
    for path in (f"/account/tokens/{token['id']}", "/workspaces/Workspace%201/settings/tokens/nope"):
        reply = http("GET", base + path, cookie_header(c))
        assert reply.status == 404, (path, reply.status)
        c.go(path)
        assert c.heading() == "Not found"
        assert c.has("link", "Workspaces")
    # The org-wide list shows it to org admins.
    c.go(f"/api-access/tokens/{token['id']}")
    assert c.heading() == "only-here"
    assert "Workspace 1" in c.text()
