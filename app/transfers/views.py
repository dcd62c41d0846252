"""The migration menu: overview and actions tabs, the move-out wizard, withdraw."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from app.auth.domain import Permission, has_permission
from app.auth.views import origin, safe_next
from app.errors import ServiceError, ValidationFailed
from app.extensions import db
from app.templating import item_state_labels
from app.transfers import services
from app.transfers.forms import ChecklistForm, SummaryForm

bp = Blueprint("transfers", __name__, url_prefix="/settings/migrations")

WIZARD = "move_wizard"


@bp.before_request
@login_required
def _superusers_only():
    """The migration menu exists for superusers of an environment only."""
    if not has_permission(current_user.role, Permission.MIGRATE):
        raise NotFound()


@bp.get("")
def overview():
    q_out = request.args.get("q_out", "").strip()[:100]
    q_in = request.args.get("q_in", "").strip()[:100]
    outgoing = services.list_transfers(
        current_user,
        direction="outgoing",
        q=q_out,
        page=request.args.get("page_out", 1, type=int),
        state_labels=item_state_labels(),
    )
    incoming = services.list_transfers(
        current_user,
        direction="incoming",
        q=q_in,
        page=request.args.get("page_in", 1, type=int),
        state_labels=item_state_labels(),
    )
    return render_template(
        "transfers/overview.html", outgoing=outgoing, incoming=incoming, q_out=q_out, q_in=q_in
    )


@bp.get("/actions")
def actions():
    return render_template("transfers/actions.html")


@bp.route("/move", methods=["GET", "POST"])
def move_checklist():
    form = ChecklistForm()
    if form.validate_on_submit():
        session[WIZARD] = {"checklist": True}
        return redirect(url_for("transfers.move_select"))
    return render_template("transfers/move_checklist.html", form=form), 422 if form.errors else 200


def _wizard() -> dict | None:
    state = session.get(WIZARD)
    if not state or not state.get("checklist"):
        flash(_("Confirm the checklist first."), "info")
        return None
    return state


@bp.route("/move/select", methods=["GET", "POST"])
def move_select():
    state = _wizard()
    if state is None:
        return redirect(url_for("transfers.move_checklist"))
    connections = services.connections_for_wizard(current_user)
    connection_id = request.values.get("connection_id", type=int) or state.get("connection_id")
    if connection_id is None and connections:
        connection_id = connections[0].id
    rows = services.preflight(current_user, connection_id) if connection_id else []
    errors: list[str] = []
    if request.method == "POST":
        try:
            ids = [int(v) for v in request.form.getlist("administration_ids")]
        except ValueError:
            raise NotFound() from None
        try:
            services.check_selection(current_user, ids)
        except ValidationFailed as failure:
            errors = failure.by_field().get("administration_ids", [])
        if not errors:
            session[WIZARD] = {**state, "connection_id": connection_id, "administration_ids": ids}
            return redirect(url_for("transfers.move_summary"))
    selected = set(request.form.getlist("administration_ids", type=int)) or set(
        state.get("administration_ids", [])
    )
    return render_template(
        "transfers/move_select.html",
        connections=connections,
        connection_id=connection_id,
        rows=rows,
        selected=selected,
        errors=errors,
    ), 422 if errors else 200


@bp.route("/move/summary", methods=["GET", "POST"])
def move_summary():
    state = _wizard()
    if state is None:
        return redirect(url_for("transfers.move_checklist"))
    ids = state.get("administration_ids") or []
    if not ids:
        flash(_("Choose the administrations first."), "info")
        return redirect(url_for("transfers.move_select"))
    rows = [services.preflight_administration(current_user, i) for i in ids]
    form = SummaryForm()
    errors: dict[str, list[str]] = {}
    if form.validate_on_submit():
        try:
            transfer, code = services.create_offer(
                current_user,
                administration_ids=ids,
                recipient_emails=[e for e in form.recipient_emails.data if e],
                checklist_confirmed=bool(state.get("checklist")),
                accept_terms=form.accept_terms.data,
                origin=origin(),
            )
        except ValidationFailed as failure:
            db.session.rollback()
            errors = failure.by_field()
        else:
            db.session.commit()
            session.pop(WIZARD, None)
            flash(
                _("The offer has been sent. Transfer code: %(code)s", code=code),
                "success",
            )
            return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    return render_template(
        "transfers/move_summary.html",
        form=form,
        rows=rows,
        errors=errors,
    ), 422 if errors or form.errors else 200


@bp.get("/<int:transfer_id>")
def detail(transfer_id: int):
    view = services.get_transfer(current_user, transfer_id)
    return render_template("transfers/detail.html", view=view)


@bp.post("/<int:transfer_id>/withdraw")
def withdraw(transfer_id: int):
    try:
        services.withdraw(current_user, transfer_id, origin=origin())
    except ServiceError as error:
        db.session.rollback()
        flash(error.translated(), "error")
    else:
        db.session.commit()
        flash(_("The offer has been withdrawn; the transfer code no longer works."), "success")
    return redirect(safe_next(request.form.get("next")) or url_for("transfers.overview"))


@bp.get("/fetch")
def fetch():
    """The receiving side's tab; the signed link in the offer mail lands here."""
    return render_template(
        "transfers/fetch.html", code=services.code_from_link(request.args.get("token"))
    )
