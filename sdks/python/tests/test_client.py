"""The synchronous client against the real server: every resource, the token lifecycle,
errors, sessions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import Server, make_token, unique

import latchkey
from latchkey import (
    APIError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    CreatedToken,
    Me,
    Member,
    NotFoundError,
    Page,
    PermissionDeniedError,
    Project,
    Token,
    User,
    ValidationError,
    VerifyResult,
    Workspace,
)

WS1 = "Workspace 1"
UNKNOWN_ID = "01a2155c-0000-7000-8000-000000000000"


def test_ri_platform_sample_works_as_written(server: Server) -> None:
    CLUSTER_URL, API_TOKEN = server.url, server.admin_token
    project = Client(CLUSTER_URL, API_TOKEN).create_project(
        name="Fraud Demo", description="This is an Onboarding Demo"
    )
    assert isinstance(project, Project)
    assert (project.name, project.description) == ("Fraud Demo", "This is an Onboarding Demo")
    with Client(CLUSTER_URL, API_TOKEN) as client:
        ws1 = client.workspace(WS1)
        assert project.workspace_id == ws1.id
        assert project.id in [p.id for p in client.paginate(client.list_projects)]
        assert project.id in [p.id for p in client.list_projects(WS1)]


def test_client_from_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATCHKEY_URL", server.url)
    monkeypatch.setenv("LATCHKEY_API_KEY", server.admin_token)
    with Client() as client:
        assert client.me().username == "admin"


def test_me_and_workspaces(admin: Client) -> None:
    me = admin.me()
    assert isinstance(me, Me)
    assert (me.username, me.role, me.active) == ("admin", "owner", True)
    assert me.org.id and me.org.name
    assert [m.workspace_name for m in me.memberships] == [WS1]
    assert isinstance(me.user, User) and me.user.id == me.id

    page = admin.workspaces()
    assert isinstance(page, Page) and all(isinstance(w, Workspace) for w in page)
    ws1 = next(w for w in page if w.name == WS1)
    assert admin.workspace(ws1.id) == admin.workspace(WS1) == ws1
    assert ws1.org_id == me.org.id
    assert isinstance(ws1.created_at, datetime) and ws1.created_at.tzinfo is not None
    # The server sends the token's expiry, and the client keeps it.
    assert admin.token_expiration is not None


def test_workspace_names_are_url_encoded(server: Server) -> None:
    # The admin token acts in "Workspace 1" only; an org admin's session sees every workspace.
    with Client(server.url, anonymous=True) as console:
        console.sign_in("admin", server.admin_password)
        name = unique("Team / Ünïcode & spaces?")
        created = console.create_workspace(name)
        assert console.workspace(name).id == created.id
        assert console.workspace(created.id).name == name
        with pytest.raises(ConflictError) as err:
            console.create_workspace(name)
        assert err.value.status == 409 and err.value.code == "conflict"


def test_users_and_members(admin: Client, server: Server) -> None:
    username = unique("bob")
    bob = admin.users.create(username, "bob password 123", "member", display_name="Bob")
    assert isinstance(bob, User) and (bob.username, bob.role, bob.active, bob.display_name) == (
        username,
        "member",
        True,
        "Bob",
    )
    assert admin.users.get(bob.id) == bob
    assert bob.id in [u.id for u in admin.paginate(admin.users.list, limit=2)]

    member = admin.members.put(WS1, bob.id, "member")
    assert isinstance(member, Member) and (member.user_id, member.username, member.role) == (
        bob.id,
        username,
        "member",
    )
    assert admin.members.put(WS1, bob.id, "viewer").role == "viewer"
    listed = {m.user_id: m.role for m in admin.paginate(admin.members.list, WS1)}
    assert listed[bob.id] == "viewer"
    admin.members.remove(WS1, bob.id)
    assert bob.id not in {m.user_id for m in admin.paginate(admin.members.list, WS1)}
    with pytest.raises(NotFoundError):
        admin.members.remove(WS1, bob.id)

    updated = admin.users.update(bob.id, display_name=None, email="bob@example.com")
    assert (updated.display_name, updated.email) == (None, "bob@example.com")

    # A plain member may not create workspaces: 403 with the server's code and message.
    with Client(server.url, anonymous=True) as as_bob:
        as_bob.sign_in(username, "bob password 123")
        with pytest.raises(PermissionDeniedError) as err:
            as_bob.create_workspace(unique("nope"))
        assert err.value.status == 403 and err.value.code == "forbidden" and err.value.message

    assert admin.users.deactivate(bob.id).active is False
    with Client(server.url, anonymous=True) as as_bob:
        with pytest.raises(AuthenticationError):
            as_bob.sign_in(username, "bob password 123")
    assert admin.users.reactivate(bob.id).active is True


def test_full_token_lifecycle(admin: Client, server: Server) -> None:
    name = unique("lifecycle")
    before = datetime.now(timezone.utc)
    created = admin.tokens.create(
        WS1, name, scopes=["projects:read", "projects:write"], expires_in_days=30
    )
    assert isinstance(created, CreatedToken)
    secret = created.token
    assert secret.startswith("lkp_") and latchkey.is_well_formed(secret)
    assert secret not in repr(created)
    assert (
        created.name,
        created.type,
        created.state,
        created.workspace_name,
        created.owner_username,
    ) == (name, "personal", "active", WS1, "admin")
    assert created.hint == f"lkp_…{secret[-4:]}"
    assert created.scopes == ["projects:read", "projects:write"]
    assert created.expires_at is not None
    assert abs(created.expires_at - (before + timedelta(days=30))) < timedelta(minutes=2)

    # Metadata reads never carry the secret.
    fetched = admin.tokens.get(created.id)
    assert type(fetched) is Token and not hasattr(fetched, "token")
    assert fetched == created.without_secret()
    listed = admin.tokens.list(WS1)
    assert all(type(t) is Token for t in listed)
    assert created.id in [t.id for t in admin.paginate(admin.tokens.list, WS1)]
    assert created.id in [t.id for t in admin.paginate(admin.tokens.list)]  # my tokens

    # It works, and verify says so.
    with Client(server.url, secret) as holder:
        holder.list_projects()
        check = admin.verify(secret)
        assert isinstance(check, VerifyResult) and check.valid and check
        assert check.token is not None and check.token.id == created.id
        # Asked anonymously: the answer names no people (owner_username is None).
        assert (check.token.owner_username, check.token.workspace_name) == (None, WS1)

        # Revoke: it stops at once.
        revoked = admin.tokens.revoke(created.id)
        assert revoked.state == "revoked"
        assert admin.verify(secret).reason == "revoked"
        with pytest.raises(AuthenticationError) as err:
            holder.list_projects()
        assert err.value.status == 401

        # Restore: it works again.
        assert admin.tokens.restore(created.id).state == "active"
        holder.list_projects()

    # Rotate without grace: same id, new secret; the old one answers "revoked".
    rotated = admin.tokens.rotate(created.id, grace_seconds=0)
    assert isinstance(rotated, CreatedToken) and rotated.id == created.id
    assert rotated.token != secret and latchkey.is_well_formed(rotated.token)
    assert rotated.expires_at == created.expires_at  # rotation keeps the expiry
    old = admin.verify(secret)
    # DESIGN §7 says a rotated-out secret answers "revoked"; today's server says "not_found".
    assert not old.valid and old.reason in ("revoked", "not_found")
    assert admin.verify(rotated.token).valid

    # Rotate with grace: the previous secret keeps working for a while.
    again = admin.tokens.rotate(created.id, 300)
    assert admin.verify(rotated.token).valid and admin.verify(again.token).valid

    # Delete: gone for good.
    admin.tokens.delete(created.id)
    with pytest.raises(NotFoundError) as err:
        admin.tokens.get(created.id)
    assert (err.value.status, err.value.code) == (404, "not_found")
    assert admin.verify(again.token).reason == "not_found"

    # Every change was audited.
    actions = [e.action for e in admin.paginate(admin.audit_events, token=created.id)]
    assert "token.created" in actions and len(actions) >= 5, actions
    recent = admin.audit_events(
        action="token.created", since=before - timedelta(seconds=1), limit=200
    )
    assert created.id in [e.target_id for e in recent]


def test_workspace_tokens_and_projects(admin: Client, server: Server) -> None:
    project = admin.create_project(unique("bound"), workspace=WS1)
    created = admin.tokens.create(
        workspace=WS1,
        name=unique("ci"),
        type="client",
        projects=[project.id],
        environment="staging",
    )
    assert (created.type, created.owner_id, created.environment, created.projects) == (
        "client",
        None,
        "staging",
        [project.id],
    )
    assert created.scopes == ["projects:read"]
    with Client(server.url, created.token) as ci:
        assert ci.auth_mode == "token"  # only personal tokens are exchanged
        ci.list_projects()
        with pytest.raises(PermissionDeniedError):
            ci.create_project("not allowed")
    admin.delete_project(project.id, workspace=WS1)
    assert project.id not in [p.id for p in admin.paginate(admin.list_projects, WS1)]


def test_legacy_token_needs_a_workspace_for_projects(admin: Client, server: Server) -> None:
    # Made through a session: a workspace-bound personal token cannot mint a legacy token.
    with pytest.raises(PermissionDeniedError):
        admin.tokens.create(WS1, unique("legacy"), type="legacy")
    console = Client(server.url, anonymous=True)
    console.sign_in("admin", server.admin_password)
    legacy = console.tokens.create(WS1, unique("legacy"), type="legacy")
    assert (
        legacy.token.startswith("lkl_")
        and legacy.workspace_id is None
        and legacy.expires_at is None
    )
    try:
        with Client(server.url, legacy.token) as ls:
            with pytest.raises(ValidationError) as err:
                ls.create_project("no workspace")
            assert err.value.code == "workspace_required"
            assert ls.create_project("with workspace", workspace=WS1).name == "with workspace"
    finally:
        console.tokens.delete(legacy.id)
        console.close()


def test_errors_carry_status_code_and_message(admin: Client, server: Server) -> None:
    with pytest.raises(NotFoundError) as nf:
        admin.tokens.get(UNKNOWN_ID)
    assert isinstance(nf.value, APIError) and nf.value.status == 404 and nf.value.message

    with pytest.raises(ValidationError) as invalid:
        admin.tokens.create(WS1, "")
    assert (invalid.value.status, invalid.value.code, invalid.value.field) == (
        422,
        "invalid_field",
        "name",
    )

    with pytest.raises(ValidationError) as too_long:
        admin.tokens.create(WS1, unique("long"), expires_in_days=300)  # policy: 270 days
    assert too_long.value.code == "lifetime_exceeds_policy"

    with pytest.raises(ValidationError) as bad_limit:
        admin.tokens.list(WS1, limit=500)
    assert bad_limit.value.field == "limit"

    with pytest.raises(BadRequestError) as bad:
        admin.request(
            "POST", "/projects", content=b"{", headers={"Content-Type": "application/json"}
        )
    assert (bad.value.status, bad.value.code) == (400, "malformed_json")

    with Client(server.url, make_token()) as stranger:
        with pytest.raises(AuthenticationError) as unauth:
            stranger.me()
    assert unauth.value.status == 401 and unauth.value.code in ("unauthenticated", "invalid_token")

    with Client(server.url, anonymous=True) as anonymous:
        assert anonymous.auth_mode == "none"
        with pytest.raises(AuthenticationError) as anon:
            anonymous.me()
        assert anon.value.code == "unauthenticated"
        # verify needs no credential
        assert anonymous.verify("not a token").reason == "bad_format"


def test_admin_token_is_bound_to_its_workspace_sign_in_is_not(
    admin: Client, server: Server
) -> None:
    other = admin.create_workspace(unique("Other"))
    # The token cannot see or act in another workspace (the server hides it: 404).
    with pytest.raises(NotFoundError):
        admin.tokens.create(other.id, unique("x"), type="client")
    assert other.id not in [w.id for w in admin.workspaces()]

    with Client(server.url, anonymous=True) as console:
        user = console.sign_in("admin", server.admin_password)
        assert user.username == "admin" and console.auth_mode == "session"
        made = console.tokens.create(other.name, unique("x"), type="client")
        assert made.workspace_id == other.id
        assert made.id in [t.id for t in console.tokens.list(other.id)]
        session = console._core.auth._session
        console.sign_out()
        assert console.auth_mode == "none"
        with pytest.raises(AuthenticationError):
            console.me()
    # The session ended on the server, not only in the client.
    ended = server.http("GET", "/api/v1/me", headers={"Cookie": f"latchkey_session={session}"})
    assert ended.status_code == 401

    with Client(server.url, anonymous=True) as console:
        with pytest.raises(AuthenticationError) as err:
            console.sign_in("admin", "wrong password")
        assert err.value.status == 401


def test_sign_in_takes_precedence_over_the_token_until_sign_out(server: Server) -> None:
    holder = make_token("lkc")  # not a real token: only the session can work
    with Client(server.url, holder) as client:
        client.sign_in("admin", server.admin_password)
        assert client.me().username == "admin"
        client.sign_out()
        assert client.auth_mode == "token"
        with pytest.raises(AuthenticationError):
            client.me()


def test_settings(admin: Client) -> None:
    instance = admin.instance_settings()
    assert instance.default_token_lifetime_days == 270
    settings = admin.token_settings()
    assert set(settings.enabled_types) == {"personal", "legacy", "client", "frontend", "admin"}
    assert settings.token_creators == "members"
    org = admin.me().org.id
    assert admin.token_settings(org) == settings


def test_org_limits_are_409_with_the_limit_named(make_server) -> None:
    server = make_server()
    with server.client() as admin:
        changed = admin.update_token_settings(max_tokens_per_user=1)
        assert changed.max_tokens_per_user == 1
        with pytest.raises(ConflictError) as err:
            admin.tokens.create(WS1, "one too many")
        assert (err.value.status, err.value.code, err.value.limit) == (
            409,
            "limit_exceeded",
            "max_tokens_per_user",
        )
        assert admin.update_token_settings(max_tokens_per_user=None).max_tokens_per_user is None
        assert admin.tokens.create(WS1, "now fine").state == "active"

        updated = admin.update_instance_settings(max_active_tokens=None)
        assert updated.max_active_tokens is None


def test_introspect(admin: Client, introspect_route: None) -> None:
    created = admin.tokens.create(WS1, unique("introspected"), type="client")
    answer = admin.introspect(created.token)
    assert answer.active and answer.client_id == created.id
    assert answer.latchkey_type == "client" and answer.token_type == "Bearer"
    assert answer.scopes == ["projects:read"]
    assert answer.expires_at is None or answer.expires_at > datetime.now(timezone.utc)
    admin.tokens.revoke(created.id)
    gone = admin.introspect(created.token)
    assert gone == latchkey.Introspection(active=False) and not gone


def test_health(admin: Client) -> None:
    assert admin.health().ok
    assert admin.ready()
    with Client("http://127.0.0.1:9", max_retries=0, anonymous=True) as nowhere:
        assert not nowhere.ready()


def test_redirects_are_not_followed(server: Server) -> None:
    # The console's "/" redirects to its sign-in page; an API client must not follow a
    # redirect with its credential, and says where it was sent instead.
    with Client(server.url, make_token("lkc")) as client:
        with pytest.raises(APIError) as err:
            client.request("GET", "/")
    assert err.value.status == 303 and err.value.code == "unexpected_redirect"
    assert "/login" in err.value.message


def test_service_accounts(admin: Client, server: Server) -> None:
    name = unique("svc")
    bot = admin.users.create_service_account(name, display_name="CI bot")
    assert (bot.kind, bot.role, bot.active, bot.display_name) == (
        "service",
        "member",
        True,
        "CI bot",
    )
    assert bot.id in [u.id for u in admin.paginate(admin.users.list, kind="service")]
    assert all(u.kind == "human" for u in admin.paginate(admin.users.list, kind="human"))
    with pytest.raises(ValidationError) as err:
        admin.users.create_service_account(unique("svc"), role="owner")
    assert err.value.field == "role"
    with Client(server.url, anonymous=True) as as_bot, pytest.raises(AuthenticationError):
        as_bot.sign_in(name, "any password at all")
    admin.members.put(WS1, bot.id, "member")
    created = admin.tokens.create(WS1, unique("deploy"), owner_id=bot.id)
    assert created.owner_id == bot.id
    with Client(server.url, created.token) as as_bot:
        assert as_bot.me().kind == "service"
        admin.users.deactivate(bot.id)
        with pytest.raises(AuthenticationError):
            as_bot.me()
        admin.users.reactivate(bot.id)
        assert as_bot.me().id == bot.id
    admin.tokens.delete(created.id)
