"""Approval (issue 14, DESIGN.md §8): ``approval_required_types`` in the token settings,
``tokens.approve`` / ``tokens.deny``, and reason ``pending`` — against the real binary."""

from __future__ import annotations

import pytest
from conftest import Server

from latchkey import Client, ConflictError, PermissionDeniedError

WS1 = "Workspace 1"
ADA = ("ada", "ada's long passphrase 1")


def test_an_org_admins_admin_token_waits_for_another_admin(make_server) -> None:
    server: Server = make_server()
    with server.client() as owner:
        org = owner.me().org.id
        assert owner.token_settings().approval_required_types == []
        owner.users.create(ADA[0], ADA[1], "admin")
        assert owner.update_token_settings(
            approval_required_types=["admin"]
        ).approval_required_types == ["admin"]
        with Client(server.url, anonymous=True) as ada:
            ada.sign_in(*ADA)
            # Only owners change the setting.
            with pytest.raises(PermissionDeniedError) as err:
                ada.update_token_settings(org, approval_required_types=[])
            assert (err.value.status, err.value.code) == (403, "forbidden")
            made = ada.tokens.create(WS1, "deploy", type="admin")
            assert made.state == "pending"
            assert made.token.startswith("lka_")
            checked = owner.verify(made.token)
            assert (checked.valid, checked.reason) == (False, "pending")
            # Its creator cannot decide it.
            with pytest.raises(PermissionDeniedError) as err:
                ada.tokens.approve(made.id)
            assert err.value.status == 403
            assert owner.tokens.get(made.id).state == "pending"
            # Another org admin (here the owner) approves: it works.
            assert owner.tokens.approve(made.id).state == "active"
            assert owner.verify(made.token).valid
            # Deny is final.
            other = ada.tokens.create(WS1, "other", type="admin")
            assert owner.tokens.deny(other.id).state == "denied"
            with pytest.raises(ConflictError) as conflict:
                owner.tokens.approve(other.id)
            assert (conflict.value.status, conflict.value.code) == (409, "conflict")
            assert owner.verify(other.token).reason == "revoked"
        # An owner's own admin token skips approval.
        assert owner.tokens.create(WS1, "owner's", type="admin").state == "active"
