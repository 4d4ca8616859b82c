"""Lifetime policies (issue 14): ``idle_revoke_days`` and ``max_token_lifetime_days`` in the
token settings, against the real binary. (The server's clock cannot be moved from here:
the idle sweep and a token aging past the cap are tested in the server's e2e suite.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import Server

from latchkey import Client, PermissionDeniedError, TokenSettings, ValidationError

WS1 = "Workspace 1"


def test_lifetime_settings_are_off_by_default_set_and_cleared(make_server) -> None:
    server: Server = make_server()
    with server.client() as admin:
        before = admin.token_settings()
        assert (before.idle_revoke_days, before.max_token_lifetime_days) == (None, None)
        changed = admin.update_token_settings(idle_revoke_days=90, max_token_lifetime_days=30)
        assert isinstance(changed, TokenSettings)
        assert (changed.idle_revoke_days, changed.max_token_lifetime_days) == (90, 30)
        # Other settings are kept; one field at a time.
        assert changed.max_tokens_per_user == before.max_tokens_per_user
        assert admin.update_token_settings(idle_revoke_days=None).max_token_lifetime_days == 30
        off = admin.update_token_settings(max_token_lifetime_days=None)
        assert off == before


def test_bad_values_are_422_naming_the_field_and_change_nothing(make_server) -> None:
    server: Server = make_server()
    with server.client() as admin:
        admin.update_token_settings(max_token_lifetime_days=30)
        for field in ("idle_revoke_days", "max_token_lifetime_days"):
            for bad in (0, -1, 3651):
                with pytest.raises(ValidationError) as err:
                    admin.update_token_settings(**{field: bad})
                assert (err.value.status, err.value.code, err.value.field) == (
                    422,
                    "invalid_field",
                    field,
                ), bad
        after = admin.token_settings()
        assert (after.idle_revoke_days, after.max_token_lifetime_days) == (None, 30)


def test_the_cap_refuses_longer_or_no_expiries_and_shortens_the_default(make_server) -> None:
    server: Server = make_server()
    with server.client() as admin:
        admin.update_token_settings(max_token_lifetime_days=30)
        with pytest.raises(ValidationError) as err:
            admin.tokens.create(WS1, "too long", type="client", expires_in_days=31)
        assert (err.value.code, err.value.field) == ("lifetime_exceeds_policy", "expires_in_days")
        later = datetime.now(timezone.utc) + timedelta(days=40)
        with pytest.raises(ValidationError) as err:
            admin.tokens.create(WS1, "too late", type="admin", expires_at=later)
        assert (err.value.code, err.value.field) == ("lifetime_exceeds_policy", "expires_at")
        with pytest.raises(ValidationError) as err:
            admin.tokens.create(WS1, "would never expire", type="client")
        assert (err.value.code, err.value.field) == ("lifetime_exceeds_policy", "expires_in_days")
        capped = admin.tokens.create(WS1, "default lifetime", type="personal")
        assert capped.expires_at is not None
        assert capped.expires_at - capped.created_at == timedelta(days=30)
        assert admin.verify(capped.token).valid


def test_only_org_admins_change_them(make_server) -> None:
    server: Server = make_server()
    with server.client() as admin:
        org = admin.me().org.id
        admin.users.create("mia", "mia's long passphrase 1", "member")
        admin.users.create("ada", "ada's long passphrase 1", "admin")
    with Client(server.url, anonymous=True) as mia:
        mia.sign_in("mia", "mia's long passphrase 1")
        with pytest.raises(PermissionDeniedError) as err:
            mia.update_token_settings(org, idle_revoke_days=1)
        assert err.value.status == 403
    with Client(server.url, anonymous=True) as ada:
        ada.sign_in("ada", "ada's long passphrase 1")
        assert ada.update_token_settings(org, idle_revoke_days=7).idle_revoke_days == 7
    with server.client() as admin:
        assert admin.token_settings().idle_revoke_days == 7
