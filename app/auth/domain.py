"""Pure rules about roles, permissions and API tokens."""

from __future__ import annotations

import enum
import hashlib
import secrets

from app.auth.models import Role


class Permission(enum.StrEnum):
    VIEW_ADMINISTRATIONS = "view_administrations"
    DOWNLOAD_DOCUMENTS = "download_documents"
    UPLOAD_DOCUMENTS = "upload_documents"
    DECIDE_DOCUMENTS = "decide_documents"
    MANAGE_SETTINGS = "manage_settings"  # workflows, authorization flows, users, connections
    MIGRATE = "migrate"  # offer, withdraw and claim administrations
    UNLOCK_DOCUMENTS = "unlock_documents"  # migrated ("gemigreerd") documents
    SUPPORT_CONSOLE = "support_console"


_TENANT_READ = {Permission.VIEW_ADMINISTRATIONS, Permission.DOWNLOAD_DOCUMENTS}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SUPERUSER: frozenset(
        _TENANT_READ
        | {
            Permission.UPLOAD_DOCUMENTS,
            Permission.DECIDE_DOCUMENTS,
            Permission.MANAGE_SETTINGS,
            Permission.MIGRATE,
            Permission.UNLOCK_DOCUMENTS,
        }
    ),
    Role.USER: frozenset(_TENANT_READ | {Permission.UPLOAD_DOCUMENTS}),
    Role.AUTHORIZER: frozenset(_TENANT_READ | {Permission.DECIDE_DOCUMENTS}),
    # Support sees metadata across environments in its own console, never tenant pages.
    Role.SUPPORT: frozenset({Permission.SUPPORT_CONSOLE}),
}


def has_permission(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


# Where a login session keeps its user's session version (``User.session_version``).
SESSION_VERSION_KEY = "_session_version"

TOKEN_PREFIX = "ovd_"


def new_api_token() -> str:
    """A fresh personal API token: a marker prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256. The token carries 256 bits, so a
    fast unsalted digest is enough; the digest alone cannot be used to log in."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_display_prefix(token: str) -> str:
    return token[: len(TOKEN_PREFIX) + 4]
