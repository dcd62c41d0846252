"""Log in and out, the user's own page (language, API tokens), the language switch."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import services
from app.auth.forms import ApiTokenForm, LanguageForm, LoginForm
from app.errors import ServiceError
from app.extensions import limiter
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


def _login_limit() -> str:
    from flask import current_app

    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm(next=request.args.get("next"))
    if form.validate_on_submit():
        with unit_of_work():  # the attempt is audited whether or not it succeeds
            user = services.authenticate(form.email.data, form.password.data, origin=origin())
        if user is not None:
            login_user(user)
            if user.language:
                session["language"] = user.language
            return redirect(safe_next(form.next.data) or home_for(user))
        form.password.errors.append(_("The e-mail address or password is not correct."))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash(_("You have been logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/language")
def language():
    form = LanguageForm()
    if form.validate_on_submit():
        user = current_user if current_user.is_authenticated else None
        with unit_of_work():
            services.set_language(user, form.language.data)
        session["language"] = form.language.data
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
