"""The migration menu: overview and actions tabs, the move-out wizard, withdraw."""

from __future__ import annotations

import csv
import io
import json

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound

from app.auth.domain import Permission, has_permission
from app.auth.views import origin, safe_next
from app.errors import ServiceError, ValidationFailed
from app.extensions import db, limiter
from app.templating import item_state_labels, label
from app.transfers import claims, services
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


def _code_limit() -> str:
    return current_app.config["CLAIM_CODE_RATE_LIMIT"]


def _failed_code(response) -> bool:
    """Only failed code entries count against the limit."""
    return bool(g.get("claim_code_failed"))


def _user_key() -> str:
    user = g.get("api_user") or current_user
    return f"user:{user.id}"


def _environment_key() -> str:
    user = g.get("api_user") or current_user
    return f"environment:{user.environment_id}"


# Failed code entries, shared by the pages and the API, per user and per environment.
limit_code_per_user = limiter.shared_limit(
    _code_limit, scope="claim-code-user", key_func=_user_key, deduct_when=_failed_code
)
limit_code_per_environment = limiter.shared_limit(
    _code_limit,
    scope="claim-code-environment",
    key_func=_environment_key,
    deduct_when=_failed_code,
)


def _render_preview(code: str, preview, errors: dict | None = None, form_values=None):
    return render_template(
        "transfers/claim_preview.html",
        code=code,
        preview=preview,
        errors=errors or {},
        values=form_values or {},
    ), 422 if errors else 200


@bp.route("/fetch", methods=["GET", "POST"])
@limit_code_per_user
@limit_code_per_environment
def fetch():
    """The receiving side's tab: the checklist and the code. The signed link in the
    offer mail lands here with the code filled in."""
    if request.method == "GET":
        token = request.args.get("token")
        return render_template(
            "transfers/fetch.html",
            code=services.code_from_link(token) or "",
            bad_link=bool(token) and services.code_from_link(token) is None,
            errors=[],
        )
    code = request.form.get("code", "")
    try:
        preview = claims.preview(current_user, code, origin=origin())
    except ServiceError as error:
        db.session.rollback()
        claims.record_failed_attempt(current_user, origin=origin())
        db.session.commit()
        return render_template(
            "transfers/fetch.html", code=code, bad_link=False, errors=[error.translated()]
        ), 422
    db.session.rollback()  # a preview changes nothing
    return _render_preview(code, preview)


def _decisions_from_form(form) -> list[claims.Decision]:
    decisions = []
    for key in form:
        if not key.startswith("action-"):
            continue
        try:
            item_id = int(key.removeprefix("action-"))
        except ValueError:
            continue
        decisions.append(
            claims.Decision(
                item_id=item_id,
                action=form.get(key, ""),
                connection_id=form.get(f"connection-{item_id}", type=int),
                message=form.get(f"message-{item_id}"),
            )
        )
    return decisions


@bp.post("/claims")
@limit_code_per_user
@limit_code_per_environment
def submit_claim():
    code = request.form.get("code", "")
    try:
        claim = claims.submit_claim(
            current_user,
            code,
            _decisions_from_form(request.form),
            accept_terms=request.form.get("accept_terms") == "y",
            origin=origin(),
        )
    except ValidationFailed as failure:
        db.session.rollback()
        preview = claims.preview(current_user, code, origin=origin())
        db.session.rollback()
        return _render_preview(code, preview, failure.by_field(), request.form)
    except ServiceError as error:
        db.session.rollback()
        claims.record_failed_attempt(current_user, origin=origin())
        db.session.commit()
        return render_template(
            "transfers/fetch.html", code=code, bad_link=False, errors=[error.translated()]
        ), 422
    db.session.commit()
    flash(_("The claim has been recorded. The administrations are being copied."), "success")
    return redirect(url_for("transfers.claim", claim_id=claim.id))


@bp.get("/claims/<int:claim_id>")
def claim(claim_id: int):
    view = claims.get_claim(current_user, claim_id)
    return render_template("transfers/claim.html", view=view)


def _progress_json(progress: list) -> list[dict]:
    return [
        {
            "item_id": p.item.id,
            "state": p.item.state.value,
            "label": label(p.item.state),
            "done": p.done,
            "total": p.total,
            "percent": p.percent,
        }
        for p in progress
    ]


@bp.get("/claims/<int:claim_id>/progress")
def claim_progress(claim_id: int):
    view = claims.get_claim(current_user, claim_id)
    return jsonify(finished=view.finished, items=_progress_json(view.items))


@bp.get("/progress")
def progress():
    """Progress of the overview's rows that are being copied (ids in ``items``)."""
    ids = [int(v) for v in request.args.get("items", "").split(",") if v.isdigit()]
    return jsonify(items=_progress_json(claims.items_progress(current_user, ids)))


@bp.get("/claims/<int:claim_id>/reconciliation.<any(csv, json):fmt>")
def reconciliation(claim_id: int, fmt: str):
    """Per document: source and target content hash with a verdict, streamed."""
    summary = claims.reconciliation_summary(current_user, claim_id)
    rows = claims.reconciliation_rows(current_user, claim_id)
    filename = f"reconciliation-claim-{claim_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "json":
        return Response(
            stream_with_context(_json_report(claim_id, summary, rows)),
            mimetype="application/json",
            headers=headers,
        )
    return Response(stream_with_context(_csv_report(rows)), mimetype="text/csv", headers=headers)


def _csv_report(rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "transfer_item_id",
            "administration",
            "source_document_id",
            "source_sha256",
            "target_document_id",
            "target_sha256",
            "verdict",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                row.item_id,
                row.administration,
                row.source_document_id,
                row.source_hash,
                row.target_document_id or "",
                row.target_hash or "",
                row.verdict,
            ]
        )
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _json_report(claim_id: int, summary, rows):
    head = {"claim_id": claim_id, "administrations": [s.as_dict() for s in summary]}
    yield json.dumps(head)[:-1] + ', "documents": ['
    for index, row in enumerate(rows):
        yield ("," if index else "") + json.dumps(row.as_dict())
    yield "]}"
