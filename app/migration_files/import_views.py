"""The import wizard and an import's page (Settings › Migratie › Importeer een
migratiebestand). Thin: the services are in ``imports``.

The wizard keeps its choices in the session (``import_wizard``): before you begin (the
preconditions), what you import, the upload. The upload's token creates the import and
runs the dry run in one unit of work; the import's page shows the check, the queue and
the progress, and takes the confirmation.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext
from flask_login import current_user, login_required

from app.admin_settings.models import Environment
from app.converters import as_id
from app.errors import NotFoundError, ServiceError
from app.extensions import db
from app.migration_files import imports, planning
from app.migration_files.forms import BeforeForm, CancelForm, ChooseForm, ConfirmForm, UploadForm
from app.migration_files.models import Import, ImportState
from app.storage import CHUNK, blob_store, content_disposition
from app.templating import import_state_label
from app.transfers.access import require_migrate
from app.uploads import services as uploads
from app.web import origin, unit_of_work

bp = Blueprint("imports", __name__, url_prefix="/settings/migrations/imports")

WIZARD = "import_wizard"

FINISHED = (ImportState.COMPLETED, ImportState.FAILED, ImportState.CANCELLED, ImportState.REFUSED)


def problem_text(problem: dict) -> str:
    """A problem of the report ({file, line, field, message, params}) in words."""
    message, params = problem["message"], problem.get("params") or {}
    return gettext(message, **params)


@bp.before_request
@login_required
def _logged_in():
    """Every page needs a login; the services check the role and the environment."""


def _environment() -> Environment:
    require_migrate(current_user)
    if current_user.environment_id is None:
        raise NotFoundError()
    return db.session.get(Environment, current_user.environment_id)


def _preconditions(environment: Environment):
    """(the reason the environment cannot import or None, its connections by package)."""
    try:
        planning.require_premium(environment)
    except ServiceError as refused:
        return refused.translated(), {}
    return None, planning.connections_by_package(environment.id)


def _wizard(step: str) -> dict | None:
    state = session.get(WIZARD) or {}
    if not state.get("before") or (step == "upload" and not state.get("import_type")):
        return None
    return state


# --- The wizard -----------------------------------------------------------------------


@bp.route("", methods=["GET", "POST"])
def start():
    """Voordat je begint: what arrives, what does not, and the preconditions."""
    environment = _environment()
    refusal, connections = _preconditions(environment)
    form = BeforeForm()
    ready = refusal is None and bool(connections)
    if form.validate_on_submit() and ready:
        session[WIZARD] = {"before": True}
        return redirect(url_for("imports.choose"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "migration_files/import_before.html",
        form=form,
        refusal=refusal,
        connections=connections,
        ready=ready,
    ), status


def _connection_choices(environment: Environment) -> dict[str, list]:
    """The packages the environment has more than one connection of: a choice each."""
    return {
        package: found
        for package, found in planning.connections_by_package(environment.id).items()
        if len(found) > 1
    }


@bp.route("/choose", methods=["GET", "POST"])
def choose():
    """Wat importeer je: the type, the default status, and a connection per package."""
    environment = _environment()
    state = _wizard("choose")
    if state is None:
        flash(gettext("Start with the first step."), "info")
        return redirect(url_for("imports.start"))
    refusal, _connections = _preconditions(environment)
    if refusal:
        return redirect(url_for("imports.start"))
    choices = _connection_choices(environment)
    form = ChooseForm(data=None if request.method == "POST" else _saved(state))
    chosen = dict(state.get("connections") or {})
    errors: dict[str, str] = {}
    if request.method == "POST":
        for package, found in choices.items():
            value = as_id(request.form.get(f"connection-{package}"))
            if value is None or value not in {c.id for c in found}:
                errors[package] = gettext("Choose one of your own connections for each package.")
            else:
                chosen[package] = value
        if form.validate_on_submit() and not errors:
            session[WIZARD] = {
                **state,
                "import_type": form.import_type.data,
                "default_status": form.default_status.data,
                "connections": {p: chosen[p] for p in choices if p in chosen},
            }
            return redirect(url_for("imports.upload"))
    return render_template(
        "migration_files/import_choose.html",
        form=form,
        choices=choices,
        chosen=chosen,
        connection_errors=errors,
    ), 422 if request.method == "POST" else 200


def _saved(state: dict) -> dict | None:
    if not state.get("import_type"):
        return None
    return {"import_type": state["import_type"], "default_status": state["default_status"]}


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    """Upload: the file arrives over tus; its token creates the import and checks it."""
    _environment()
    state = _wizard("upload")
    if state is None:
        flash(gettext("Start with the first step."), "info")
        return redirect(url_for("imports.start"))
    form = UploadForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            with unit_of_work():
                done = uploads.completed_upload(current_user, form.upload_token.data)
                imp = imports.create_import(
                    current_user,
                    blob_key=done.blob_key,
                    size=done.length,
                    file_name=done.filename,
                    upload_id=done.id,
                    import_type=state["import_type"],
                    default_status=state["default_status"],
                    connections=state.get("connections") or None,
                    origin=origin(),
                )
                imports.dry_run(imp)
        except imports.AlreadyImported as earlier:
            session.pop(WIZARD, None)
            return redirect(url_for("imports.detail", import_id=earlier.import_id))
        except NotFoundError:
            errors = [
                gettext("The upload was not found or is not complete. Upload the file again.")
            ]
        except ServiceError as error:
            if not error.for_the_form:
                raise
            errors = [m for ms in error.by_field().values() for m in ms]
        else:
            session.pop(WIZARD, None)
            return redirect(url_for("imports.detail", import_id=imp.id))
    elif request.method == "POST":
        errors = [e for es in form.errors.values() for e in es]
    return render_template(
        "migration_files/import_upload.html", form=form, errors=errors, state=state
    ), 422 if request.method == "POST" else 200


# --- An import's page -----------------------------------------------------------------


def _progress(imp: Import) -> dict:
    """The lower bar: 10% once queued, then 10% + 90% × done/total while importing."""
    done, total = imports.progress(imp) if imp.state is ImportState.IMPORTING else (0, 0)
    if imp.state is ImportState.COMPLETED:
        percent = 100
    elif imp.state is ImportState.IMPORTING:
        percent = 10 + (90 * done // total if total else 0)
    elif imp.state is ImportState.QUEUED:
        percent = 10
    else:
        percent = 0
    return {
        "state": imp.state.value,
        "label": import_state_label(imp.state),
        "done": done,
        "total": total,
        "percent": percent,
        "position": imports.queue_position(imp),
        "finished": imp.state in FINISHED,
    }


def _render_detail(imp: Import, *, confirm_form=None, errors=(), status: int = 200):
    report = imp.report or {}
    return render_template(
        "migration_files/import.html",
        imp=imp,
        counts=report.get("counts") or {},
        conflicts=report.get("conflicts") or [],
        problems=[{**p, "text": problem_text(p)} for p in report.get("errors") or []],
        progress=_progress(imp),
        starts_at=imports.starts_at(imp),
        confirm_form=confirm_form or ConfirmForm(),
        cancel_form=CancelForm(),
        errors=list(errors),
        items=imp.items if imp.state is ImportState.COMPLETED else [],
    ), status


@bp.get("/<int:import_id>")
def detail(import_id: int):
    return _render_detail(imports.import_for(current_user, import_id))


@bp.post("/<int:import_id>/confirm")
def confirm(import_id: int):
    imp = imports.import_for(current_user, import_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _render_detail(imp, confirm_form=form, status=422)
    try:
        with unit_of_work():
            imports.confirm(
                current_user, imp.id, conflicts=form.conflicts.data or None, origin=origin()
            )
    except ServiceError as error:
        if not error.for_the_form:
            raise
        messages = [m for ms in error.by_field().values() for m in ms]
        imp = imports.import_for(current_user, import_id)
        return _render_detail(imp, confirm_form=form, errors=messages, status=error.status)
    flash(gettext("The import is in the queue."), "success")
    return redirect(url_for("imports.detail", import_id=import_id))


@bp.post("/<int:import_id>/cancel")
def cancel(import_id: int):
    imp = imports.import_for(current_user, import_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _render_detail(imp, status=422)
    try:
        with unit_of_work():
            imports.cancel(current_user, imp.id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        imp = imports.import_for(current_user, import_id)
        return _render_detail(imp, errors=[error.translated()], status=error.status)
    flash(gettext("The import has been cancelled; nothing was imported."), "success")
    return redirect(url_for("transfers.overview"))


@bp.get("/<int:import_id>/progress")
def progress_json(import_id: int):
    """The import page's lower bar, polled by static/js/import_progress.js."""
    imp = imports.import_for(current_user, import_id)
    response = jsonify(_progress(imp))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:import_id>/report.csv")
def report_csv(import_id: int):
    """The result per document, written by the worker when the import finished."""
    imp = imports.import_for(current_user, import_id)
    if not imp.result_blob_key:
        abort(404)
    stream = blob_store().open(imp.result_blob_key)

    def chunks():
        with stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    stem = imp.file_name.rsplit(".", 1)[0] or "import"
    response = Response(stream_with_context(chunks()), mimetype="text/csv")
    response.headers["Content-Disposition"] = content_disposition(f"{stem}-resultaat.csv")
    response.headers["Cache-Control"] = "no-store"
    return response
