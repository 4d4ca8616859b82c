"""Every page passes axe-core (no serious or critical violation) at desktop width and at
375 px, reads without sideways scrolling on a phone, and the main flow works by keyboard.
Screenshots of each page land in target/console-screenshots/."""

from __future__ import annotations


from flows import add_member, create_token, create_user, open_form, open_workspace_tokens, read_dialog_secret
from harness import Console, publish_screenshots, wait_for

# The screenshots docs/console.md shows; LATCHKEY_UPDATE_DOCS_SCREENSHOTS=1 refreshes them.
DOC_SCREENSHOTS = [
    "sign-in-desktop",
    "workspaces-desktop",
    "api-access-tokens-desktop",
    "token-dialog-desktop",
    "confirm-rotate-desktop",
    "account-desktop",
    "api-access-new-desktop",
    "org-token-settings-desktop",
    "org-users-desktop",
    "org-audit-log-desktop",
    "api-access-tokens-mobile",
    "token-dialog-mobile",
]


def audit_page(c: Console, name: str, problems: list[str]) -> None:
    for mobile in (False, True):
        c.set_width(mobile)
        width = "mobile" if mobile else "desktop"
        for violation in c.axe():
            problems.append(f"{name} ({width}): {violation}")
        if mobile and c.overflows_horizontally():
            problems.append(f"{name} (mobile): scrolls sideways at 375 px")
        c.screenshot(f"{name}-{width}")
    c.set_width(False)


def test_every_page_is_accessible_and_fits_a_phone(server, browsers):
    problems: list[str] = []
    c = browsers()
    c.go("/login")
    audit_page(c, "sign-in", problems)
    c.sign_in("admin", "not the password")
    audit_page(c, "sign-in-failed", problems)
    c.sign_in("admin")
    audit_page(c, "workspaces", problems)
    c.press("New workspace")
    audit_page(c, "workspaces-new", problems)

    c.go("/workspaces")
    c.follow("Workspace 1")
    c.fill("Project name", "Fraud Demo")
    c.fill("Description", "This is an Onboarding Demo")
    c.press("Create project")
    audit_page(c, "workspace", problems)
    c.follow("Settings")
    audit_page(c, "workspace-settings", problems)

    create_user(c, "mia", "mia's long passphrase 1")
    add_member(c, "Workspace 1", "mia")
    audit_page(c, "members", problems)

    open_workspace_tokens(c)
    create_token(c, "ci-token", expires="90")
    create_token(c, "web-client", token_type="client", environment="production")
    c.press("Revoke web-client")
    c.confirm("Revoke")
    open_form(c)
    c.fill("Token Name", "deploy-bot")
    c.choose("Type", "admin")
    c.press("Create Token")
    c.dialog()
    audit_page(c, "token-dialog", problems)
    c.press("Done", c.dialog())
    audit_page(c, "api-access-tokens", problems)
    c.press("Rotate ci-token")
    c.dialog("alertdialog")
    audit_page(c, "confirm-rotate", problems)
    c.press("Cancel", c.dialog("alertdialog"))

    c.follow("Account & Settings")
    c.press("Create legacy token")
    read_dialog_secret(c)
    open_form(c)
    create_token(c, "laptop", expires="30", workspace=c.options("Workspace")[0][0])
    audit_page(c, "account", problems)

    c.follow("API access")
    audit_page(c, "api-access", problems)
    c.press("New API token")
    audit_page(c, "api-access-new", problems)

    c.follow("Organization")
    audit_page(c, "org-users", problems)
    c.follow("Access Token Settings")
    audit_page(c, "org-token-settings", problems)
    c.follow("Instance Settings")
    audit_page(c, "org-instance-settings", problems)
    c.follow("Audit Log")
    audit_page(c, "org-audit-log", problems)

    mia = browsers()
    mia.sign_in("mia", "mia's long passphrase 1")
    open_workspace_tokens(mia)
    create_token(mia, "mia-cli")
    audit_page(mia, "member-api-access-tokens", problems)
    mia.go("/organization")
    audit_page(mia, "member-forbidden", problems)

    publish_screenshots(DOC_SCREENSHOTS)

    assert not problems, "\n".join(problems)


def tab_to(c: Console, name: str, limit: int = 80):
    """Presses Tab until the focused control's accessible name is `name`."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(c.driver).send_keys(Keys.TAB).perform()
        focused = c.driver.switch_to.active_element
        if (focused.accessible_name or "").strip() == name:
            return focused
    raise AssertionError(f"Tab never reached {name!r}")


def enter(c: Console, navigates: bool = True) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    old = c.driver.find_element("tag name", "html")
    ActionChains(c.driver).send_keys(Keys.ENTER).perform()
    if navigates:
        from selenium.common.exceptions import StaleElementReferenceException

        def replaced():
            try:
                old.tag_name
                return False
            except StaleElementReferenceException:
                return True

        wait_for(replaced, 15, "the next page")
        c.wait_ready()


def type_text(c: Console, text: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(c.driver).send_keys(text).perform()


def test_main_flow_by_keyboard_only(server, browser):
    c = browser
    c.go("/login")
    assert (c.driver.switch_to.active_element.accessible_name or "") == "Username"
    type_text(c, "admin")
    tab_to(c, "Password")
    type_text(c, "correct horse battery staple")
    enter(c)
    assert c.heading() == "Workspaces"

    tab_to(c, "Workspace 1")
    enter(c)
    tab_to(c, "Settings")
    enter(c)
    tab_to(c, "API Access Tokens")
    enter(c)
    tab_to(c, "New token")
    enter(c)
    # The form opens with Token Name focused.
    assert c.driver.switch_to.active_element.accessible_name == "Token Name"
    type_text(c, "kb-token")
    enter(c)

    dialog = c.dialog()
    focused = c.driver.switch_to.active_element
    assert focused.accessible_name == "Token"
    secret = focused.get_attribute("value")
    tab_to(c, "Copy to Clipboard", limit=3)
    enter(c, navigates=False)
    wait_for(lambda: c.clipboard() == secret, message="the secret on the clipboard")
    tab_to(c, "Done", limit=3)
    enter(c, navigates=False)
    wait_for(c.no_dialog, message="the dialog to close")
    assert secret not in c.driver.page_source
    del dialog

    tab_to(c, "Revoke kb-token")
    enter(c, navigates=False)
    box = c.dialog("alertdialog")
    assert c.driver.switch_to.active_element.accessible_name == "Cancel"
    tab_to(c, "Revoke", limit=3)
    enter(c)
    assert c.banner() == "Token “kb-token” revoked. It stops working at once."
    assert "Revoked" in c.row("kb-token").text
