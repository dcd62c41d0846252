"""The import wizard's forms: each carries its CSRF token; bad input is a form error."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectChoice
from wtforms.validators import DataRequired, InputRequired, Optional

IMPORT_TYPES = (
    SelectChoice("combined", _l("Combined: administrations with their documents")),
    SelectChoice("administrations", _l("Administrations only")),
    SelectChoice("documents", _l("Documents only, into administrations imported before")),
)
DEFAULT_STATUSES = (
    SelectChoice("pending", _l("To be decided")),
    SelectChoice("approved", _l("Approved")),
    SelectChoice("rejected", _l("Rejected")),
)
CONFLICT_CHOICES = (
    SelectChoice("skip", _l("Skip conflicts: keep what is here")),
    SelectChoice("overwrite", _l("Overwrite conflicts with what the file holds")),
)


class BeforeForm(FlaskForm):
    """Only its CSRF token: the next step is reached once the preconditions hold."""


class ChooseForm(FlaskForm):
    import_type = RadioField(
        _l("What do you import?"),
        choices=IMPORT_TYPES,
        default="combined",
        validators=[InputRequired(_l("Choose what to import."))],
        invalid_choice_message=_l("Choose what to import."),
    )
    default_status = RadioField(
        _l("Status of documents that carry none"),
        choices=DEFAULT_STATUSES,
        default="pending",
        validators=[InputRequired(_l("Choose the status for documents that carry none."))],
        invalid_choice_message=_l("Choose the status for documents that carry none."),
    )


class UploadForm(FlaskForm):
    upload_token = HiddenField(validators=[DataRequired(_l("Upload the file first."))])


class ConfirmForm(FlaskForm):
    conflicts = RadioField(
        _l("Conflicts"),
        choices=CONFLICT_CHOICES,
        validators=[Optional()],
        validate_choice=False,  # imports.confirm refuses anything but skip or overwrite
    )


class CancelForm(FlaskForm):
    """Only its CSRF token."""
