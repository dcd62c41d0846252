"""Settings › Administraties, an administration's page, users and connections."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from wtforms import SelectChoice

from app.admin_settings import locks, services
from app.admin_settings.forms import ConnectionForm, UploadForm, UserForm
from app.admin_settings.models import DocumentKind, DocumentStatus, Package
from app.auth.models import Role
from app.converters import as_id, page_arg
from app.errors import NotFoundError, ServiceError
from app.storage import blob_store
from app.templating import MIGRATED_DOCUMENT, label
from app.web import origin, unit_of_work

bp = Blueprint("admin_settings", __name__, url_prefix="/settings")


@bp.before_request
@login_required
def _require_login():
    """Every page here needs a logged-in user; support has no environment here."""
    if current_user.is_support:
        raise NotFoundError()


@bp.get("/administrations")
def administrations():
    groups = services.list_administrations(current_user)
    statuses = {s.value: s for s in DocumentStatus}
    return render_template("admin_settings/administrations.html", groups=groups, statuses=statuses)


# The status filter's value for locked documents, shown as "gemigreerd": the other
# tabs (to be decided, approved, rejected) show only unlocked documents of that status.
MIGRATED_FILTER = "migrated"


def _status_filter() -> DocumentStatus | str | None:
    value = request.args.get("status", "")
    if value == MIGRATED_FILTER:
        return MIGRATED_FILTER
    try:
        return DocumentStatus(value) if value else None
    except ValueError:
        return None


def _page() -> int:
    return page_arg()


def _upload_form() -> UploadForm:
    form = UploadForm()
    form.kind.choices = [SelectChoice(k.value, label(k)) for k in DocumentKind]
    return form


def _render_administration(administration_id: int, upload_form: UploadForm, status_code: int = 200):
    row = services.get_administration(current_user, administration_id)
    status = _status_filter()
    if status == MIGRATED_FILTER:
        page = services.list_documents(current_user, administration_id, locked=True, page=_page())
    else:
        page = services.list_documents(
            current_user,
            administration_id,
            status=status,
            locked=False if status else None,
            page=_page(),
        )
    filters = [(s.value, label(s), row.facts.shown(s)) for s in DocumentStatus]
    filters.append((MIGRATED_FILTER, str(MIGRATED_DOCUMENT), row.facts.locked_documents))
    return (
        render_template(
            "admin_settings/administration.html",
            row=row,
            administration=row.administration,
            documents=page,
            status=status.value if isinstance(status, DocumentStatus) else status,
            filters=filters,
            upload_form=upload_form,
        ),
        status_code,
    )


@bp.get("/administrations/<int:administration_id>")
def administration(administration_id: int):
    return _render_administration(administration_id, _upload_form())


def _back(administration_id: int):
    """Back to the administration's page, keeping the filter and page the user was on."""
    return redirect(
        url_for(
            "admin_settings.administration",
            administration_id=administration_id,
            status=request.form.get("status") or None,
            page=as_id(request.form.get("page")),
        )
        + (request.form.get("anchor") or "")
    )


def _chosen_document_ids() -> list[int]:
    """A row's own button names its document in the query string (``one``); the toolbar
    buttons act on the ticked checkboxes. An id no document can have is a 404."""
    one = request.args.get("one")
    try:
        document_ids = [int(v) for v in ([one] if one else request.form.getlist("document_ids"))]
    except ValueError:
        raise NotFoundError() from None
    if any(as_id(v) is None for v in document_ids):
        raise NotFoundError()
    return document_ids


@bp.post("/administrations/<int:administration_id>/documents/decide")
def decide_documents(administration_id: int):
    one = request.args.get("one")
    action = request.args.get("action") if one else request.form.get("action", "")
    document_ids = _chosen_document_ids()
    try:
        with unit_of_work():
            changed = services.decide_documents(
                current_user, administration_id, document_ids, action or "", origin=origin()
            )
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
        return _back(administration_id)
    if action == "approve":
        message = ngettext("%(num)d document approved.", "%(num)d documents approved.", changed)
    else:
        message = ngettext("%(num)d document rejected.", "%(num)d documents rejected.", changed)
    flash(message, "success")
    return _back(administration_id)


@bp.post("/administrations/<int:administration_id>/documents/unlock")
def unlock_documents(administration_id: int):
    document_ids = _chosen_document_ids()
    try:
        with unit_of_work():
            unlocked = locks.unlock_documents(
                current_user, administration_id, document_ids, origin=origin()
            )
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
        return _back(administration_id)
    flash(
        ngettext("%(num)d document unlocked.", "%(num)d documents unlocked.", unlocked),
        "success",
    )
    return _back(administration_id)


@bp.post("/administrations/<int:administration_id>/documents")
def upload_document(administration_id: int):
    form = _upload_form()
    if form.validate_on_submit():
        upload = form.file.data
        try:
            with unit_of_work():
                services.upload_document(
                    current_user,
                    administration_id,
                    filename=upload.filename or "document",
                    stream=upload.stream,
                    kind=DocumentKind(form.kind.data),
                    counterparty=form.counterparty.data,
                    invoice_date=form.invoice_date.data,
                    origin=origin(),
                )
        except ServiceError as error:
            if not error.for_the_form:
                raise
            form.file.errors = [error.translated()]
        else:
            flash(_("The document has been uploaded and waits for a decision."), "success")
            return redirect(
                url_for("admin_settings.administration", administration_id=administration_id)
            )
    return _render_administration(administration_id, form, 422)


@bp.get("/administrations/<int:administration_id>/documents/<int:document_id>/file")
def document_file(administration_id: int, document_id: int):
    document = services.get_document(current_user, administration_id, document_id)
    as_attachment = request.args.get("download") == "1"
    store = blob_store()
    url = store.download_url(
        document.blob_key,
        filename=document.filename,
        content_type=document.content_type,
        as_attachment=as_attachment,
    )
    if url is not None:
        # The object store serves the file itself, from its own origin, with a link
        # that expires: never cache the redirect.
        response = redirect(url, 302)
        response.headers["Cache-Control"] = "no-store"
        return response
    response = send_file(
        store.open(document.blob_key),
        mimetype=document.content_type,
        download_name=document.filename,
        as_attachment=as_attachment,
        max_age=0,
    )
    # An uploaded file never runs script in our origin.
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src 'self'; object-src 'self'"
    )
    return response


@bp.post("/administrations/<int:administration_id>/workflows/<int:workflow_id>/deactivate")
def deactivate_workflow(administration_id: int, workflow_id: int):
    return _set_workflow_active(administration_id, workflow_id, False)


@bp.post("/administrations/<int:administration_id>/workflows/<int:workflow_id>/activate")
def activate_workflow(administration_id: int, workflow_id: int):
    return _set_workflow_active(administration_id, workflow_id, True)


def _set_workflow_active(administration_id: int, workflow_id: int, active: bool):
    try:
        with unit_of_work():
            workflow = services.set_workflow_active(
                current_user, administration_id, workflow_id, active, origin=origin()
            )
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        if active:
            flash(_("Workflow “%(name)s” is active again.", name=workflow.name), "success")
        else:
            flash(_("Workflow “%(name)s” has been deactivated.", name=workflow.name), "success")
    return _back(administration_id)


@bp.post("/administrations/<int:administration_id>/workflows/<int:workflow_id>/delete")
def delete_workflow(administration_id: int, workflow_id: int):
    try:
        with unit_of_work():
            services.delete_workflow(current_user, administration_id, workflow_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(_("The workflow has been deleted."), "success")
    return _back(administration_id)


@bp.post("/administrations/<int:administration_id>/authorization-steps/<int:step_id>/delete")
def remove_authorizer(administration_id: int, step_id: int):
    try:
        with unit_of_work():
            services.remove_authorizer(current_user, administration_id, step_id, origin=origin())
    except ServiceError as error:
        if not error.for_the_form:
            raise
        flash(error.translated(), "error")
    else:
        flash(_("The authorizer has been removed from the authorization flow."), "success")
    return _back(administration_id)


def _user_form() -> UserForm:
    form = UserForm()
    form.role.choices = [
        SelectChoice(r.value, label(r)) for r in (Role.USER, Role.AUTHORIZER, Role.SUPERUSER)
    ]
    return form


@bp.route("/users", methods=["GET", "POST"])
def users():
    form = _user_form()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                user = services.add_user(
                    current_user,
                    email=form.email.data,
                    name=form.name.data,
                    role=Role(form.role.data),
                    password=form.password.data,
                    origin=origin(),
                )
        except ServiceError as error:
            if not error.for_the_form:
                raise
            getattr(form, error.field).errors.append(error.translated())
        else:
            flash(_("%(name)s has been added.", name=user.name), "success")
            return redirect(url_for("admin_settings.users"))
    return render_template(
        "admin_settings/users.html", users=services.list_users(current_user), form=form
    ), 422 if form.errors else 200


@bp.route("/connections", methods=["GET", "POST"])
def connections():
    form = ConnectionForm()
    if form.validate_on_submit():
        with unit_of_work():
            connection = services.add_connection(
                current_user, Package(form.package.data), form.name.data, origin=origin()
            )
        flash(_("Connection “%(name)s” has been added.", name=connection.name), "success")
        return redirect(url_for("admin_settings.connections"))
    return render_template(
        "admin_settings/connections.html",
        connections=services.list_connections(current_user),
        form=form,
    ), 422 if form.errors else 200
