"""The support console: transfers of every environment, the stuck ones, revoke,
retry, audit trail and evidence. Support staff only; anyone else gets a 404."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext, to_utc
from flask_login import current_user, login_required

from app import audit_text
from app.converters import MAX_OLDER_THAN_DAYS, arg_int, id_arg, page_arg
from app.csvfiles import spreadsheet_csv
from app.db import utcnow
from app.errors import N_, NotFoundError, ServiceError
from app.migration_files.models import ImportState
from app.spreadsheets import MIMETYPE as XLSX
from app.spreadsheets import spreadsheet_xlsx
from app.support import services
from app.support.forms import RevokeForm
from app.templating import import_state_label
from app.web import origin, unit_of_work

bp = Blueprint("support", __name__, url_prefix="/support")


@bp.before_request
@login_required
def _support_only():
    """Support pages do not exist for anyone else."""
    if not current_user.is_support:
        raise NotFoundError()


def _filters() -> dict:
    args = request.args
    state = args.get("state", "")
    return {
        "state": state if state in services.FILTER_STATES else None,
        "source_id": id_arg("source"),
        "target_id": id_arg("target"),
        "older_than_days": arg_int("older_than", None, min=0, max=MAX_OLDER_THAN_DAYS),
        "q": args.get("q", "")[:100],
        "stuck": args.get("stuck") == "1",
    }


@bp.get("")
def index():
    filters = _filters()
    page = services.list_transfers(current_user, page=page_arg(), **filters)
    return render_template(
        "support/index.html",
        page=page,
        filters=filters,
        states=services.FILTER_STATES,
        environments=services.environments(current_user),
        reasons=services.REASONS,
    )


@bp.get("/environments")
def environments():
    return render_template(
        "support/environments.html", environments=services.environment_overview(current_user)
    )


def _render_transfer(transfer_id: int, form: RevokeForm, status: int = 200):
    row = services.get_transfer(current_user, transfer_id)
    events = services.audit_trail(
        current_user,
        transfer_id=transfer_id,
        action=request.args.get("action", "")[:60],
        page=page_arg(),
    )
    return render_template(
        "support/transfer.html",
        row=row,
        form=form,
        events=events,
        lines=audit_text.readable(events.items),
        reasons=services.REASONS,
        actions=audit_text.action_choices(
            services.transfer_audit_actions(current_user, transfer_id)
        ),
    ), status


@bp.get("/transfers/<int:transfer_id>")
def transfer(transfer_id: int):
    return _render_transfer(transfer_id, RevokeForm())


@bp.post("/transfers/<int:transfer_id>/revoke")
def revoke(transfer_id: int):
    form = RevokeForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.revoke(current_user, transfer_id, form.reason.data, origin=origin())
        except ServiceError as error:
            if not error.for_the_form:
                raise
            flash(error.translated(), "error")
            return redirect(url_for("support.transfer", transfer_id=transfer_id))
        flash(_("The transfer has been revoked; both offices have been told why."), "success")
        return redirect(url_for("support.transfer", transfer_id=transfer_id))
    return _render_transfer(transfer_id, form, 422)


@bp.post("/transfers/<int:transfer_id>/retry")
def retry(transfer_id: int):
    try:
        with unit_of_work():
            n = services.retry(current_user, transfer_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(
            ngettext("%(num)d failed copy queued again.", "%(num)d failed copies queued again.", n),
            "success",
        )
    return redirect(url_for("support.transfer", transfer_id=transfer_id))


@bp.get("/transfers/<int:transfer_id>/evidence.csv")
def evidence(transfer_id: int):
    columns, rows, preamble = _evidence(transfer_id)
    # Runs while streaming, in a context (and database session) of its own.
    generate = spreadsheet_csv(columns, rows, preamble=preamble)
    return Response(
        stream_with_context(generate),
        mimetype="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="evidence-transfer-{transfer_id}.csv"'
        },
    )


@bp.get("/transfers/<int:transfer_id>/evidence.xlsx")
def evidence_xlsx(transfer_id: int):
    columns, rows, preamble = _evidence(transfer_id)
    return Response(
        spreadsheet_xlsx(columns, rows, preamble=preamble, title=_("Evidence")),
        mimetype=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="evidence-transfer-{transfer_id}.xlsx"'
        },
    )


def _evidence(transfer_id: int) -> tuple[list[str], Iterator[list], Callable]:
    """The evidence list's columns, rows and header block, for the CSV and the Excel file."""
    view = services.get_transfer(current_user, transfer_id)  # 404 before the response starts
    transfer = view.transfer
    source = transfer.source_environment.name
    target = transfer.target_environment.name if transfer.target_environment else ""
    items = len(transfer.items)

    def preamble(count: int, digest: str) -> list[list]:
        return [
            [_("Evidence of transfer %(id)d", id=transfer_id), ""],
            [_("Offering office"), source],
            [_("Receiving office"), target],
            [_("Made at"), utcnow().replace(microsecond=0)],
            [_("Administrations"), items],
            [_("Lines"), count],
            [_("SHA-256 of the list below"), digest],
        ]

    columns = [_(c) for c in services.EVIDENCE_COLUMNS]
    return columns, services.evidence(current_user, transfer_id), preamble


AUDIT_DATE_ERROR = N_("Enter a date as yyyy-mm-dd, for example 2026-12-01.")
AUDIT_ORDER_ERROR = N_("The start date is after the end date.")


def _audit_filters() -> tuple[dict, dict[str, str], dict[str, str]]:
    """The audit trail's filters from the query string: the service's arguments, the
    values as typed (to show them again) and an error per bad date field. A date is
    a day in the reader's time zone; both ends are included."""
    typed = {name: request.args.get(name, "")[:40].strip() for name in ("from", "to")}
    days: dict[str, date | None] = {}
    errors: dict[str, str] = {}
    for name, text in typed.items():
        days[name] = None
        if not text:
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
        if day is None or not 1900 <= day.year <= 9998:
            errors[name] = _(AUDIT_DATE_ERROR)
        else:
            days[name] = day
    if days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"] = _(AUDIT_ORDER_ERROR)

    def start_of(day: date | None) -> datetime | None:
        if day is None:
            return None
        return to_utc(datetime.combine(day, time.min)).replace(tzinfo=UTC)

    filters = {
        "environment_id": id_arg("environment"),
        "action": request.args.get("action", "")[:60],
        "since": start_of(days["from"]),
        "before": start_of(days["to"] + timedelta(days=1)) if days["to"] else None,
    }
    return filters, typed, errors


def _audit_page(filters: dict, typed: dict, errors: dict):
    events = None if errors else services.audit_trail(current_user, page=page_arg(), **filters)
    query = {
        "environment": filters["environment_id"],
        "action": filters["action"] or None,
        "from": typed["from"] or None,
        "to": typed["to"] or None,
    }
    return render_template(
        "support/audit.html",
        events=events,
        lines=audit_text.readable(events.items) if events else [],
        environment_id=filters["environment_id"],
        action=filters["action"],
        typed=typed,
        errors=errors,
        query=query,
        environments=services.environments(current_user),
        actions=audit_text.action_choices(services.audit_actions(current_user)),
    ), 400 if errors else 200


@bp.get("/audit")
def audit_trail():
    return _audit_page(*_audit_filters())


@bp.get("/audit.csv")
def audit_csv():
    """The events the audit trail's filters select, every page of them, as a CSV."""
    filters, typed, errors = _audit_filters()
    if errors:
        return _audit_page(filters, typed, errors)
    names = {e.id: e.name for e in services.environments(current_user)}

    def preamble(count: int, digest: str) -> list[list]:
        return [
            [_("Audit trail"), ""],
            [
                _("Environment"),
                _("All")
                if filters["environment_id"] is None
                else names.get(filters["environment_id"], filters["environment_id"]),
            ],
            [
                _("Action"),
                audit_text.action_label(filters["action"]) if filters["action"] else _("All"),
            ],
            [_("Date from"), typed["from"]],
            [_("Date to"), typed["to"]],
            [_("Made at"), utcnow().replace(microsecond=0)],
            [_("Lines"), count],
            [_("SHA-256 of the list below"), digest],
        ]

    # Runs while streaming, in a context (and database session) of its own.
    generate = spreadsheet_csv(
        [_(c) for c in services.AUDIT_COLUMNS],
        services.audit_export(current_user, **filters),
        preamble=preamble,
    )
    return Response(
        stream_with_context(generate),
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-trail.csv"'},
    )


@bp.get("/imports")
def imports():
    state = request.args.get("state", "")
    states = [s.value for s in ImportState]
    page = services.list_imports(
        current_user, state=state if state in states else None, page=page_arg()
    )
    return render_template(
        "support/imports.html",
        page=page,
        state=state if state in states else "",
        states=states,
        state_label=import_state_label,
    )


@bp.post("/imports/<int:import_id>/retry")
def retry_import(import_id: int):
    try:
        with unit_of_work():
            services.retry_import(current_user, import_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(_("The import has been queued again."), "success")
    return redirect(url_for("support.imports"))
