"""Authentication, API tokens and user preferences. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit
from app.auth.domain import new_api_token, token_digest, token_display_prefix
from app.auth.models import ApiToken, Role, User
from app.db import utcnow
from app.errors import N_, NotFoundError, ServiceError
from app.extensions import db
from app.outbox import queue_mail

# Compared against when the e-mail is unknown, so a wrong e-mail costs as much time
# as a wrong password and the answer reveals nothing.
_DUMMY_HASH: dict[str, str] = {}


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash(method: str) -> str:
    """The dummy hash for ``method``: computed on first use, then kept for the process."""
    dummy = _DUMMY_HASH.get(method)
    if dummy is None:
        dummy = _DUMMY_HASH[method] = generate_password_hash("not a password", method=method)
    return dummy


def authenticate(email: str, password: str, *, origin: str) -> User | None:
    """The user with these credentials, or ``None``. Failures are audited."""
    user = db.session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).one_or_none()
    if user is None:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        audit.record(
            "login_failed",
            actor=None,
            object_type="user",
            object_id=None,
            environment_id=None,
            origin=origin,
            details={"reason": "unknown_email"},
        )
        return None
    if not check_password_hash(user.password_hash, password):
        audit.record(
            "login_failed",
            actor=user,
            object_type="user",
            object_id=user.id,
            environment_id=user.environment_id,
            origin=origin,
            details={"reason": "wrong_password"},
        )
        return None
    audit.record(
        "login",
        actor=user,
        object_type="user",
        object_id=user.id,
        environment_id=user.environment_id,
        origin=origin,
    )
    return user


def _raise_session_version(user: User) -> None:
    """End every session of ``user`` that carries the current version (in SQL, so two
    workers raising it at once both count)."""
    user.session_version = User.session_version + 1
    db.session.flush()
    db.session.refresh(user, ["session_version"])


def user_for_session(user_id: str, session_version: object) -> User | None:
    """The user a login session names, or ``None`` when that session has been ended
    (its version is not the user's current one) or names no user."""
    if not user_id.isdigit() or len(user_id) > 9 or not isinstance(session_version, int):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != session_version:
        return None
    return user


def end_sessions(actor: User, *, origin: str, everywhere: bool = False) -> None:
    """Log ``actor`` out: end every session of theirs, on every device and worker."""
    _raise_session_version(actor)
    audit.record(
        "sessions_ended" if everywhere else "logout",
        actor=actor,
        object_type="user",
        object_id=actor.id,
        environment_id=actor.environment_id,
        origin=origin,
    )


MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200


def change_password(actor: User, *, current: str, new: str, origin: str) -> None:
    """Set a new password for ``actor``, who proves the current one. Every session of
    theirs ends, on every device and worker (the caller starts a fresh one for this
    browser); the owner is mailed, so a change they did not make does not go unseen."""
    if not check_password_hash(actor.password_hash, current or ""):
        raise ServiceError("current_password", N_("That is not your current password."))
    if len(new) < MIN_PASSWORD_LENGTH:
        raise ServiceError(
            "new_password",
            N_("Choose a password of at least %(n)d characters."),
            n=MIN_PASSWORD_LENGTH,
        )
    if len(new) > MAX_PASSWORD_LENGTH:
        raise ServiceError(
            "new_password",
            N_("Choose a password of at most %(n)d characters."),
            n=MAX_PASSWORD_LENGTH,
        )
    if new == current:
        raise ServiceError("new_password", N_("Choose a password other than your current one."))
    actor.password_hash = hash_password(new)
    _raise_session_version(actor)
    audit.record(
        "password_changed",
        actor=actor,
        object_type="user",
        object_id=actor.id,
        environment_id=actor.environment_id,
        origin=origin,
    )
    queue_mail(
        kind="password_changed",
        to=actor.email,
        subject=N_("The password of your Overdracht account has been changed"),
        template="password_changed",
        context={"name": actor.name},
        environment_id=actor.environment_id,
        ref=("user", actor.id),
    )


def account_throttled(email: str, *, until: datetime, origin: str) -> None:
    """Failed logins for ``email`` reached the account's limit: audit it, and tell the
    account's owner (if the address has an account) when logging in works again."""
    user = db.session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).one_or_none()
    audit.record(
        "login_throttled",
        actor=None,
        object_type="user",
        object_id=user.id if user else None,
        environment_id=user.environment_id if user else None,
        origin=origin,
        details={"until": until.isoformat(), "reason": "account_limit"},
    )
    if user is None:
        return
    queue_mail(
        kind="login_throttled",
        to=user.email,
        subject=N_("Logging in to your Overdracht account has been paused"),
        template="login_throttled",
        context={"name": user.name, "until": until},
        environment_id=user.environment_id,
        ref=("user", user.id),
    )


def create_user(
    *,
    email: str,
    name: str,
    role: Role,
    password: str,
    environment_id: int | None,
) -> User:
    user = User(
        email=email.strip().lower(),
        name=name,
        role=role,
        password_hash=hash_password(password),
        environment_id=environment_id,
    )
    db.session.add(user)
    db.session.flush()
    return user


def create_api_token(actor: User, name: str, *, origin: str) -> tuple[ApiToken, str]:
    """A new personal token for ``actor``: the stored row and the token, shown once."""
    name = name.strip()
    if not name:
        raise ServiceError("name", N_("Give the token a name."))
    token = new_api_token()
    row = ApiToken(
        user_id=actor.id,
        name=name[:100],
        digest=token_digest(token),
        prefix=token_display_prefix(token),
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        "api_token_created",
        actor=actor,
        object_type="api_token",
        object_id=row.id,
        environment_id=actor.environment_id,
        origin=origin,
        details={"name": row.name},
    )
    return row, token


def revoke_api_token(actor: User, token_id: int, *, origin: str) -> None:
    """Delete one of the actor's own tokens; another user's token is a 404."""
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == actor.id)
    ).one_or_none()
    if row is None:
        raise NotFoundError()
    db.session.delete(row)
    audit.record(
        "api_token_revoked",
        actor=actor,
        object_type="api_token",
        object_id=token_id,
        environment_id=actor.environment_id,
        origin=origin,
        details={"name": row.name},
    )


def user_for_token(token: str) -> User | None:
    """The owner of a bearer token, or ``None``; records when the token was last used."""
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.digest == token_digest(token))
    ).one_or_none()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return row.user


def list_api_tokens(actor: User) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken).where(ApiToken.user_id == actor.id).order_by(ApiToken.created_at)
        )
    )


def set_language(actor: User | None, language: str) -> None:
    """Remember a logged-in user's language choice."""
    if language not in current_app.config["LANGUAGES"]:
        raise ServiceError("language", N_("Unknown language."))
    if actor is not None:
        actor.language = language
