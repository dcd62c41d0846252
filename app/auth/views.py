"""Log in and out, the user's own page (language, API tokens), the language switch."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import services, throttle
from app.auth.domain import SESSION_VERSION_KEY
from app.auth.forms import ApiTokenForm, LanguageForm, LoginForm, PasswordForm
from app.errors import ServiceError
from app.web import origin, safe_next, unit_of_work

bp = Blueprint("auth", __name__)


def home_for(user) -> str:
    if user.is_support:
        return url_for("support.index")
    return url_for("admin_settings.administrations")


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_for(current_user))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm(next=request.args.get("next"))
    if form.validate_on_submit():
        email, address = form.email.data, request.remote_addr
        wait = throttle.wait_seconds(email, address)
        if wait:  # refused before the password is looked at, right or wrong
            return _refused(form, wait)
        with unit_of_work():  # the attempt is audited whether or not it succeeds
            user = services.authenticate(email, form.password.data, origin=origin())
            if user is None:
                until = throttle.count_failure(email, address)
                if until is not None:
                    services.account_throttled(email, until=until, origin=origin())
            elif _picked_language():  # chosen on the login page: saved, so mail uses it too
                services.set_language(user, _picked_language())
        if user is not None:
            _start_session(user)
            return redirect(safe_next(form.next.data) or home_for(user))
        form.password.errors.append(_("The e-mail address or password is not correct."))
    return render_template("auth/login.html", form=form)


def _refused(form: LoginForm, wait: int):
    message = _(
        "Too many failed login attempts. Try again in %(wait)s.",
        wait=format_timedelta(timedelta(seconds=wait), threshold=1),
    )
    page = render_template("auth/login.html", form=form, throttled=message)
    return page, 429, {"Retry-After": str(wait)}


# Set when a language is picked in this browser session before logging in (the switch
# on the login page), so logging in can tell a pick from the language a previous user of
# this browser left behind when logging out.
PICKED_LANGUAGE_KEY = "language_picked"


def _picked_language() -> str | None:
    """The language picked on the login page in this anonymous session, if any."""
    return session.get("language") if session.get(PICKED_LANGUAGE_KEY) else None


def _start_session(user) -> None:
    """A new session for ``user``: nothing of the anonymous one is kept but its language
    and CSRF token, and it carries the user's session version.

    The language is the one picked on the login page (``login`` has saved it as the
    user's, so their mail uses it too), else the user's saved one, else the session's.
    The CSRF token stays so that a form loaded before logging in (another tab) still
    posts. Logging in does not raise the version: the user's sessions on other devices
    live on until a logout or "sign out everywhere" ends them all.
    """
    language = _picked_language() or user.language or session.get("language")
    csrf_token = session.get("csrf_token")
    session.clear()
    if csrf_token:
        session["csrf_token"] = csrf_token
    login_user(user)
    session[SESSION_VERSION_KEY] = user.session_version
    if language:
        session["language"] = language
    session.modified = True


def _end_session() -> None:
    language = session.get("language")
    logout_user()
    session.clear()
    if language:
        session["language"] = language
    session.modified = True


@bp.post("/logout")
@login_required
def logout():
    with unit_of_work():
        services.end_sessions(current_user._get_current_object(), origin=origin())
    _end_session()
    flash(_("You have been logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/account/sessions/end")
@login_required
def end_sessions():
    """Sign out everywhere: every session of this user, on every device, ends."""
    # CSRFProtect has checked the token before this view runs.
    with unit_of_work():
        services.end_sessions(current_user._get_current_object(), origin=origin(), everywhere=True)
    _end_session()
    flash(_("You have been logged out on every device."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """A new password; every session of this user ends, this browser gets a new one."""
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            with unit_of_work():
                services.change_password(
                    user,
                    current=form.current_password.data,
                    new=form.new_password.data,
                    origin=origin(),
                )
        except ServiceError as error:
            if not error.for_the_form:
                raise
            getattr(form, error.field).errors.append(error.translated())
        else:
            _start_session(user)
            flash(
                _("Your password has been changed. You are logged out on every other device."),
                "success",
            )
            return redirect(url_for("auth.account"))
    status = 422 if form.errors else 200
    return render_template("auth/password.html", form=form), status


@bp.post("/language")
def language():
    form = LanguageForm()
    if form.validate_on_submit():
        user = current_user if current_user.is_authenticated else None
        with unit_of_work():
            services.set_language(user, form.language.data)
        session["language"] = form.language.data
        if user is None:
            session[PICKED_LANGUAGE_KEY] = True
    return redirect(safe_next(form.next.data) or url_for("auth.index"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    form = ApiTokenForm()
    new_token = None
    if form.validate_on_submit():
        try:
            with unit_of_work():
                _row, new_token = services.create_api_token(
                    current_user, form.name.data, origin=origin()
                )
        except ServiceError as error:
            if not error.for_the_form:
                raise
            form.name.errors.append(error.translated())
        else:
            form = ApiTokenForm(formdata=None)
    return render_template(
        "auth/account.html",
        form=form,
        new_token=new_token,
        tokens=services.list_api_tokens(current_user),
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    # CSRFProtect has checked the token before this view runs.
    with unit_of_work():
        services.revoke_api_token(current_user, token_id, origin=origin())
    flash(_("The token has been revoked."), "success")
    return redirect(url_for("auth.account"))
