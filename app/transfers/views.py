"""The migration menu: overview and actions tabs, the move-out wizard, withdraw."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
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

from app.auth.domain import Permission, has_permission
from app.converters import as_id, id_arg, page_arg
from app.errors import N_, Invalid, NotFoundError, ServiceError, ValidationFailed
from app.migration_files.imports import list_imports
from app.spreadsheets import MIMETYPE as XLSX
from app.templating import format_moment, item_state_labels, label
from app.transfers import claims, codes, limits, offers, reports
from app.transfers import overview as listing
from app.transfers.forms import ChecklistForm, SummaryForm
from app.web import origin, safe_next, unit_of_work

bp = Blueprint("transfers", __name__, url_prefix="/settings/migrations")

WIZARD = "move_wizard"


@bp.before_request
@login_required
def _superusers_only():
    """The migration menu exists for superusers of an environment only."""
    if not has_permission(current_user.role, Permission.MIGRATE):
        raise NotFoundError()


@bp.get("")
def overview():
    q_out = request.args.get("q_out", "").strip()[:100]
    q_in = request.args.get("q_in", "").strip()[:100]
    outgoing = listing.list_transfers(
        current_user,
        direction="outgoing",
        q=q_out,
        page=page_arg("page_out"),
        state_labels=item_state_labels(),
    )
    incoming = listing.list_transfers(
        current_user,
        direction="incoming",
        q=q_in,
        page=page_arg("page_in"),
        state_labels=item_state_labels(),
    )
    return render_template(
        "transfers/overview.html",
        outgoing=outgoing,
        incoming=incoming,
        q_out=q_out,
        q_in=q_in,
        imports=list_imports(current_user),
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
    connections = offers.connections_for_wizard(current_user)
    connection_id = id_arg("connection_id", request.values) or state.get("connection_id")
    if connection_id is None and connections:
        connection_id = connections[0].id
    rows = offers.preflight(current_user, connection_id) if connection_id else []
    errors: list[str] = []
    if request.method == "POST":
        raw_ids = request.form.getlist("administration_ids")
        if len(raw_ids) > current_app.config["MAX_LIST_ITEMS"]:
            raise Invalid(
                "administration_ids",
                N_("Choose at most %(max)d administrations per offer."),
                max=current_app.config["MAX_LIST_ITEMS"],
            )
        ids = [as_id(v) for v in raw_ids]
        if None in ids:
            raise NotFoundError()
        try:
            offers.check_selection(current_user, ids)
        except ValidationFailed as failure:
            errors = failure.by_field().get("administration_ids", [])
        if not errors:
            session[WIZARD] = {**state, "connection_id": connection_id, "administration_ids": ids}
            return redirect(url_for("transfers.move_summary"))
    selected = {as_id(v) for v in request.form.getlist("administration_ids")[:500]} or set(
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
    rows = [offers.preflight_administration(current_user, i) for i in ids]
    form = SummaryForm()
    errors: dict[str, list[str]] = {}
    receiving = None
    if request.method == "POST" and "add_recipient" in request.form:
        form.add_recipient_row()
        form.confirmed_office.data = ""
    elif form.validate_on_submit():
        offer = dict(
            administration_ids=ids,
            recipient_emails=[e for e in form.recipient_emails.data if e],
            checklist_confirmed=bool(state.get("checklist")),
            accept_terms=form.accept_terms.data,
        )
        confirmed = as_id(form.confirmed_office.data)
        try:
            with unit_of_work():
                if confirmed is None:
                    # First the sender sees which office the recipients belong to.
                    receiving = offers.validate_offer(current_user, **offer)[2]
                else:
                    transfer, code = offers.create_offer(
                        current_user, **offer, confirmed_office_id=confirmed, origin=origin()
                    )
        except ServiceError as failure:
            if not failure.for_the_form:
                raise
            errors = failure.by_field()
        else:
            if receiving is None:
                session.pop(WIZARD, None)
                flash(
                    _("The offer has been sent. Transfer code: %(code)s", code=code),
                    "success",
                )
                return redirect(url_for("transfers.detail", transfer_id=transfer.id))
        form.confirmed_office.data = str(receiving.id) if receiving else ""
    return render_template(
        "transfers/move_summary.html",
        form=form,
        rows=rows,
        errors=errors,
        receiving=receiving,
        max_recipients=current_app.config["MAX_RECIPIENTS"],
    ), 422 if errors or form.errors else 200


@bp.get("/<int:transfer_id>")
def detail(transfer_id: int):
    view = listing.get_transfer(current_user, transfer_id)
    # A received offer says what the preview would say here, and leads to the code.
    assessment = claims.assess(current_user, view.transfer) if view.claimable else None
    return render_template("transfers/detail.html", view=view, assessment=assessment)


@bp.post("/<int:transfer_id>/withdraw")
def withdraw(transfer_id: int):
    try:
        with unit_of_work():
            offers.withdraw(current_user, transfer_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(_("The offer has been withdrawn; the transfer code no longer works."), "success")
    return redirect(safe_next(request.form.get("next")) or url_for("transfers.overview"))


@bp.post("/<int:transfer_id>/extend")
def extend(transfer_id: int):
    try:
        with unit_of_work():
            transfer = offers.extend(current_user, transfer_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(
            _(
                "The offer has been extended until %(date)s; the recipients have been told.",
                date=format_moment(transfer.expires_at, "medium"),
            ),
            "success",
        )
    return redirect(url_for("transfers.detail", transfer_id=transfer_id))


@bp.post("/<int:transfer_id>/resend")
def resend(transfer_id: int):
    try:
        with unit_of_work():
            offers.resend(current_user, transfer_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(_("The code mail has been sent again to the recipients."), "success")
    return redirect(url_for("transfers.detail", transfer_id=transfer_id))


def _render_preview(code: str, preview, errors: dict | None = None, form_values=None):
    return render_template(
        "transfers/claim_preview.html",
        code=code,
        preview=preview,
        errors=errors or {},
        values=form_values or {},
    ), 422 if errors else 200


@bp.route("/fetch", methods=["GET", "POST"])
@limits.code_entry
def fetch():
    """The receiving side's tab: the checklist and the code. The signed link in the
    offer mail lands here with the code filled in."""
    if request.method == "GET":
        token = request.args.get("token")
        return render_template(
            "transfers/fetch.html",
            code=codes.code_from_link(token) or "",
            bad_link=bool(token) and codes.code_from_link(token) is None,
            errors=[],
        )
    code = request.form.get("code", "")
    try:
        with unit_of_work():
            preview = claims.preview(current_user, code, origin=origin())
    except ServiceError as error:
        return _code_refused(code, error)
    return _render_preview(code, preview)


def _code_refused(code: str, error: ServiceError):
    """The fetch page again with the error; a code that led nowhere is counted and audited."""
    if not error.for_the_form:
        raise error
    if isinstance(error, claims.CodeRejected):
        limits.count_failure()
        with unit_of_work():
            claims.record_failed_attempt(current_user, error.reason, origin=origin())
    return render_template(
        "transfers/fetch.html", code=code, bad_link=False, errors=[error.translated()]
    ), 422


def _decisions_from_form(form) -> list[claims.Decision]:
    decisions = []
    for key in form:
        if not key.startswith("action-"):
            continue
        item_id = as_id(key.removeprefix("action-"))
        if item_id is None:
            continue
        if len(decisions) >= current_app.config["MAX_LIST_ITEMS"]:
            raise Invalid(
                "decisions",
                N_("At most %(max)d decisions at once."),
                max=current_app.config["MAX_LIST_ITEMS"],
            )
        raw_connection = form.get(f"connection-{item_id}")
        decisions.append(
            claims.Decision(
                item_id=item_id,
                action=form.get(key, ""),
                connection_id=as_id(raw_connection) if raw_connection else None,
                message=form.get(f"message-{item_id}"),
            )
        )
    return decisions


@bp.post("/claims")
@limits.code_entry
def submit_claim():
    code = request.form.get("code", "")
    try:
        decisions = _decisions_from_form(request.form)
        with unit_of_work():
            claim = claims.submit_claim(
                current_user,
                code,
                decisions,
                accept_terms=request.form.get("accept_terms") == "y",
                origin=origin(),
            )
    except ValidationFailed as failure:
        with unit_of_work():
            preview = claims.preview(current_user, code, origin=origin())
        return _render_preview(code, preview, failure.by_field(), request.form)
    except ServiceError as error:
        return _code_refused(code, error)
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
            "text": p.text,
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
    raw = request.args.get("items", "").split(",")
    if len(raw) > current_app.config["MAX_LIST_ITEMS"]:
        raise Invalid(
            "items",
            N_("At most %(max)d items at once."),
            max=current_app.config["MAX_LIST_ITEMS"],
        )
    ids = [i for i in (as_id(v) for v in raw) if i is not None]
    return jsonify(items=_progress_json(claims.items_progress(current_user, ids)))


@bp.get("/claims/<int:claim_id>/reconciliation.<any(csv, json):fmt>")
def reconciliation(claim_id: int, fmt: str):
    """Per document: source and target content hash with a verdict, streamed."""
    summary = reports.reconciliation_summary(current_user, claim_id)
    rows = reports.reconciliation_rows(current_user, claim_id)
    filename = f"reconciliation-claim-{claim_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "json":
        return Response(
            stream_with_context(reports.reconciliation_json(claim_id, summary, rows)),
            mimetype="application/json",
            headers=headers,
        )
    csv_file = reports.reconciliation_csv(rows, **_report_heading(claim_id))
    return Response(
        stream_with_context(csv_file), mimetype="text/csv; charset=utf-8", headers=headers
    )


@bp.get("/claims/<int:claim_id>/reconciliation.xlsx")
def reconciliation_xlsx(claim_id: int):
    """The reconciliation report as an Excel file."""
    rows = reports.reconciliation_rows(current_user, claim_id)
    return Response(
        reports.reconciliation_xlsx(rows, **_report_heading(claim_id)),
        mimetype=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="reconciliation-claim-{claim_id}.xlsx"'
        },
    )


def _report_heading(claim_id: int) -> dict:
    """The offices and claim the report's header block names."""
    transfer = claims.get_claim(current_user, claim_id).transfer
    target = transfer.target_environment
    return {
        "source": transfer.source_environment.name,
        "target": target.name if target else "",
        "claim_id": claim_id,
    }
