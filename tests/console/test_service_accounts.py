"""Organization → Service accounts: create one, add it to a workspace, create its token
(shown once), see it work; a service account cannot sign in; Deactivate stops its tokens,
Reactivate brings them back; members cannot open the pages."""

from __future__ import annotations

from flows import add_member, create_token, create_user, read_dialog_secret
from harness import api_create_project, http


def test_service_accounts_page(server, admin, browsers):
    admin.go("/organization")
    admin.follow("Service accounts")
    assert admin.heading() == "Service accounts"
    assert "No service accounts yet." in admin.text()

    # A bad username keeps the form filled in and names the problem.
    admin.fill("Username", "has space")
    admin.fill("Display name (optional)", "CI pipeline")
    admin.press("Create service account")
    assert admin.heading() == "Service accounts"
    assert "username" in admin.banner().lower(), admin.banner()
    assert admin.field("Display name (optional)").get_attribute("value") == "CI pipeline"

    admin.fill("Username", "ci-bot")
    admin.press("Create service account")
    assert admin.heading() == "ci-bot"
    assert "Service account “ci-bot” created." in admin.banner(), admin.banner()
    assert "never signs in" in admin.text()

    # A member of the workspace like anyone, then its token, shown once.
    add_member(admin, "Workspace 1", "ci-bot")
    admin.go("/organization/service-accounts")
    assert "ci-bot" in admin.rows()
    admin.follow("Tokens of ci-bot")
    assert admin.heading() == "ci-bot"
    secret = create_token(admin, "deploy", workspace=admin.options("Workspace")[0][0])
    assert "deploy" in admin.rows()
    assert api_create_project(server.url, secret).status == 201

    # It never signs in, whatever is typed: the one sign-in message.
    bot = browsers()
    bot.sign_in("ci-bot", "any password at all")
    assert bot.heading() == "Sign in"
    assert bot.session_cookie() is None

    # Deactivate (confirmed) stops its token at once; Reactivate brings it back.
    admin.go("/organization/service-accounts")
    admin.press("Deactivate ci-bot")
    admin.confirm("Deactivate")
    assert "Service account “ci-bot” deactivated." in admin.banner(), admin.banner()
    assert "Deactivated" in admin.row("ci-bot").text
    assert api_create_project(server.url, secret).status == 401
    admin.press("Reactivate ci-bot")
    assert "reactivated" in admin.banner(), admin.banner()
    assert api_create_project(server.url, secret).status == 201

    # Its token's row actions work from its page (Revoke, confirmed).
    admin.follow("Tokens of ci-bot")
    admin.press("Revoke deploy")
    admin.confirm("Revoke")
    assert "revoked" in admin.banner(), admin.banner()
    assert admin.heading() == "ci-bot"
    assert api_create_project(server.url, secret).status == 401

    # People are not listed here; members may not open the pages.
    create_user(admin, "mia", "mia's long passphrase 1")
    admin.go("/organization/service-accounts")
    assert "mia" not in admin.rows()
    mia = browsers()
    mia.sign_in("mia", "mia's long passphrase 1")
    mia.go("/organization/service-accounts")
    assert mia.heading() == "Not allowed"
    reply = http("GET", server.url + "/organization/service-accounts")
    assert reply.status in (303, 302, 401), reply.status


def test_a_service_accounts_page_refuses_people_and_unknown_ids(server, admin):
    create_user(admin, "pat", "pat's long passphrase 1")
    admin.go("/organization/users")
    row = admin.row("pat")
    del row
    admin.go("/organization/service-accounts/0197f0c4-1b2c-7d3e-8f40-123456789abc")
    assert admin.heading() == "Not found"
