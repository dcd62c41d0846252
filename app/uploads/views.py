"""The tus 1.0 server under ``/uploads/``: core protocol with the creation, termination,
expiration and checksum extensions, for logged-in superusers of an environment.

Every answer carries ``Tus-Resumable: 1.0.0`` and ``Cache-Control: no-store``; errors
are short text bodies (the browser client shows its own words). CSRF is enforced by
Flask-WTF on POST, PATCH and DELETE through the ``X-CSRFToken`` header. ``OPTIONS`` is
answered without looking at the session. ``POST /uploads/<token>`` with
``X-HTTP-Method-Override: PATCH`` or ``DELETE`` is that method (tus core).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.http import http_date

from app.auth.domain import Permission, has_permission
from app.errors import Invalid, NotFoundError, ServiceError
from app.storage import StorageUnavailable
from app.uploads import services, spool
from app.uploads.models import Upload, UploadState
from app.web import origin, unit_of_work

bp = Blueprint("uploads", __name__, url_prefix="/uploads")

TUS_VERSION = "1.0.0"
OCTET_STREAM = "application/offset+octet-stream"
CHECKSUM_MISMATCH = 460


class TusError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _text(status: int, message: str = "", headers: dict | None = None) -> Response:
    response = Response(message + ("\n" if message else ""), status=status)
    response.mimetype = "text/plain"
    response.headers.update(headers or {})
    return response


@bp.url_value_preprocessor
def _allow_large_chunks(endpoint, values):
    # Before the application's own input checks read the body's stream: a chunk may be
    # larger than MAX_CONTENT_LENGTH (form uploads); it is bounded by the upload's length.
    override = request.headers.get("X-HTTP-Method-Override", "").upper()
    if request.method == "PATCH" or (request.method == "POST" and override == "PATCH"):
        request.max_content_length = services.max_bytes()


@bp.before_request
def _superusers_only():
    if request.method == "OPTIONS":
        return None  # answered by the app's default OPTIONS response, see _tus_headers
    if not current_user.is_authenticated:
        raise TusError(401, "Log in first.")
    if current_user.environment_id is None or not has_permission(
        current_user.role, Permission.MIGRATE
    ):
        raise NotFoundError()
    return None


def _check_version() -> None:
    """Tus-Resumable 1.0.0 on every request but OPTIONS; asked after the upload is found,
    so another environment's token is a 404 whatever the request says."""
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise TusError(412, "Tus-Resumable 1.0.0 is required.")


@bp.after_request
def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers["Cache-Control"] = "no-store"
    if request.method == "OPTIONS":
        response.status_code = 204
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
        response.headers["Tus-Version"] = TUS_VERSION
        response.headers["Tus-Extension"] = "creation,termination,expiration,checksum"
        response.headers["Tus-Max-Size"] = str(services.max_bytes())
        response.headers["Tus-Checksum-Algorithm"] = "sha256"
    elif response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


@bp.errorhandler(TusError)
def _tus_error(error: TusError):
    return _text(error.status, error.message)


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError):
    messages = {404: "Not found.", 403: "Not allowed.", 410: "The upload has expired."}
    return _text(error.status, messages.get(error.status) or error.message or "Refused.")


@bp.errorhandler(StorageUnavailable)
def _storage_error(error: StorageUnavailable):
    current_app.logger.warning("upload: %s", error)
    return _text(503, "The file store cannot be reached; try again.", {"Retry-After": "30"})


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    code = error.code or 500
    return _text(code, error.description if code in (400, 413) else error.name)


def _length_header(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or len(value) > 19:
        raise TusError(400, f"{name} must be a non-negative integer.")
    return int(value)


def _upload_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length)}
    if upload.state is UploadState.UPLOADING:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return headers


@bp.route("/", methods=["OPTIONS", "POST"])
def create():
    _check_version()
    if "Upload-Defer-Length" in request.headers:
        raise TusError(400, "Upload-Defer-Length is not supported.")
    if "Upload-Length" not in request.headers:
        raise TusError(400, "Upload-Length is required.")
    length = _length_header("Upload-Length")
    try:
        metadata = services.parse_metadata(request.headers.get("Upload-Metadata"))
    except Invalid:
        raise TusError(400, "Upload-Metadata is not valid.") from None
    with unit_of_work():
        upload = services.create(current_user, length=length, metadata=metadata, origin=origin())
        token, expires_at = upload.token, upload.expires_at
    return _text(
        201, "", {"Location": f"{bp.url_prefix}/{token}", "Upload-Expires": http_date(expires_at)}
    )


@bp.route("/<token>", methods=["OPTIONS", "HEAD", "PATCH", "DELETE", "POST"])
def upload(token: str):
    method = request.method
    if method == "POST":
        method = request.headers.get("X-HTTP-Method-Override", "").upper()
    if method == "HEAD":
        with unit_of_work():
            found = services.find(current_user, token)
            headers = _upload_headers(found)
            recorded = found.offset if found.state is UploadState.UPLOADING else None
        if recorded is not None:
            held = _held(token)
            if held is not None and held < recorded:
                headers = _rewind(token, recorded, held)
        _check_version()
        return _text(200, "", headers)
    if method == "PATCH":
        return _patch(token)
    if method == "DELETE":
        with unit_of_work():
            services.find_any(current_user, token)
            _check_version()
            services.terminate(current_user, token, origin=origin())
        spool.remove(token)
        return _text(204)
    with unit_of_work():
        services.find(current_user, token)  # another environment's token: 404 first
    raise TusError(405, "Use HEAD, PATCH or DELETE.")


def _held(token: str) -> int | None:
    try:
        return spool.size(token)
    except FileNotFoundError:
        return None


def _rewind(token: str, recorded: int, held: int) -> dict[str, str]:
    """The spool file lost its last chunks (a power cut before they reached the disk):
    the upload continues from what it holds, and the client re-sends the rest."""
    with unit_of_work():
        upload = services.advance(current_user, token, old_offset=recorded, new_offset=held)
        return _upload_headers(upload)


def _patch(token: str) -> Response:
    with unit_of_work():
        services.find(current_user, token)  # another environment's token: 404 first
        _check_version()
        offset = _length_header("Upload-Offset")
        length = services.writable(current_user, token, offset).length
    if request.mimetype != OCTET_STREAM:
        raise TusError(415, f"Content-Type must be {OCTET_STREAM}.")
    try:
        checksum = spool.parse_checksum(request.headers.get("Upload-Checksum"))
    except ValueError as exc:
        raise TusError(400, f"Upload-Checksum: {exc}.") from None
    room = length - offset
    if request.content_length is not None and request.content_length > room:
        raise TusError(413, "The chunk goes past Upload-Length.")
    try:
        with spool.locked(token) as file:
            # Under the lock: nobody else can be writing, so the recorded offset is final.
            with unit_of_work():
                services.writable(current_user, token, offset)
            written = spool.append(
                file, request.stream, offset=offset, room=room, checksum=checksum
            )
            if written.offset == length:
                key = spool.to_blob(token)
                with unit_of_work():
                    done = services.complete(
                        current_user, token, old_offset=offset, key=key, origin=origin()
                    )
                    headers = _upload_headers(done)
                spool.remove(token)
            elif written.offset != offset:
                with unit_of_work():
                    done = services.advance(
                        current_user, token, old_offset=offset, new_offset=written.offset
                    )
                    headers = _upload_headers(done)
            else:
                headers = {"Upload-Offset": str(offset), "Upload-Length": str(length)}
    except spool.SpoolBusy:
        raise TusError(409, "Another request is writing to this upload.") from None
    except spool.SpoolShort as short:
        _rewind(token, offset, short.size)
        raise TusError(409, "Upload-Offset does not match the upload's offset.") from None
    except spool.ChunkTooLarge:
        raise TusError(413, "The chunk goes past Upload-Length.") from None
    except spool.ChecksumMismatch:
        raise TusError(CHECKSUM_MISMATCH, "Checksum mismatch; the chunk was discarded.") from None
    except FileNotFoundError:
        raise NotFoundError() from None
    if not written.whole:
        return _text(400, "The body ended before its Content-Length; the bytes that came stay.")
    return _text(204, "", headers)
