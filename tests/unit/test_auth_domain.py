"""Roles, permissions and API tokens (app.auth.domain): pure functions only."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from app.auth.domain import (
    ROLE_PERMISSIONS,
    TOKEN_PREFIX,
    Permission,
    has_permission,
    new_api_token,
    token_digest,
    token_display_prefix,
)
from app.auth.models import Role

TENANT_PERMISSIONS = set(Permission) - {Permission.SUPPORT_CONSOLE}


def test_every_role_has_permissions_defined():
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_superuser_has_every_tenant_permission_and_no_support_console():
    assert ROLE_PERMISSIONS[Role.SUPERUSER] == TENANT_PERMISSIONS
    assert not has_permission(Role.SUPERUSER, Permission.SUPPORT_CONSOLE)


def test_user_can_view_download_and_upload_but_not_decide_or_manage():
    permissions = ROLE_PERMISSIONS[Role.USER]
    assert permissions == {
        Permission.VIEW_ADMINISTRATIONS,
        Permission.DOWNLOAD_DOCUMENTS,
        Permission.UPLOAD_DOCUMENTS,
    }
    assert not has_permission(Role.USER, Permission.DECIDE_DOCUMENTS)
    assert not has_permission(Role.USER, Permission.MANAGE_SETTINGS)
    assert not has_permission(Role.USER, Permission.SUPPORT_CONSOLE)


def test_authorizer_can_decide_but_not_upload_or_manage():
    permissions = ROLE_PERMISSIONS[Role.AUTHORIZER]
    assert permissions == {
        Permission.VIEW_ADMINISTRATIONS,
        Permission.DOWNLOAD_DOCUMENTS,
        Permission.DECIDE_DOCUMENTS,
    }
    assert not has_permission(Role.AUTHORIZER, Permission.UPLOAD_DOCUMENTS)
    assert not has_permission(Role.AUTHORIZER, Permission.MANAGE_SETTINGS)
    assert not has_permission(Role.AUTHORIZER, Permission.SUPPORT_CONSOLE)


def test_support_has_only_the_support_console():
    assert ROLE_PERMISSIONS[Role.SUPPORT] == {Permission.SUPPORT_CONSOLE}
    for permission in TENANT_PERMISSIONS:
        assert not has_permission(Role.SUPPORT, permission)


def test_permission_sets_cannot_be_changed_at_runtime():
    for permissions in ROLE_PERMISSIONS.values():
        assert isinstance(permissions, frozenset)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_has_permission_agrees_with_the_table(role, permission):
    assert has_permission(role, permission) is (permission in ROLE_PERMISSIONS[role])


def test_has_permission_accepts_the_stored_string_values():
    # Templates call can("decide_documents"), and Role/Permission are StrEnums.
    assert has_permission(Role("superuser"), Permission("decide_documents"))


# --- API tokens -----------------------------------------------------------------------------


def test_new_token_has_the_prefix_and_at_least_256_random_bits():
    token = new_api_token()
    assert token.startswith(TOKEN_PREFIX) and TOKEN_PREFIX == "ovd_"
    body = token[len(TOKEN_PREFIX) :]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body), "URL-safe characters only"
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(raw) * 8 >= 256


def test_new_tokens_are_unique():
    tokens = {new_api_token() for _ in range(5000)}
    assert len(tokens) == 5000
    # No shared body either (the prefix is the only constant part).
    assert len({t[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 8] for t in tokens}) > 4990


def test_token_digest_is_the_sha256_hex_of_the_token_and_not_the_token():
    token = new_api_token()
    digest = token_digest(token)
    assert digest == hashlib.sha256(token.encode("utf-8")).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest and digest != token
    assert token_digest(token) == digest  # deterministic, so it can be looked up
    assert token_digest(new_api_token()) != digest


def test_display_prefix_is_short_and_fits_the_column():
    token = new_api_token()
    prefix = token_display_prefix(token)
    assert token.startswith(prefix)
    assert prefix.startswith(TOKEN_PREFIX)
    assert len(prefix) == len(TOKEN_PREFIX) + 4 <= 12
