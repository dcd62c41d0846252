from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from app.admin_settings.models import PACKAGE_LABELS, DocumentKind


class UploadForm(FlaskForm):
    file = FileField(
        _l("File (PDF or image)"),
        validators=[FileRequired(_l("Choose a file to upload."))],
    )
    kind = SelectField(
        _l("Kind"),
        choices=[SelectChoice(k.value) for k in DocumentKind],  # labels set in the view
        default=DocumentKind.PURCHASE_INVOICE.value,
    )
    counterparty = StringField(_l("Supplier or customer"), validators=[Optional(), Length(max=200)])
    invoice_date = DateField(_l("Invoice date"), validators=[Optional()])


class ConnectionForm(FlaskForm):
    package = SelectField(
        _l("Accounting package"),
        choices=[SelectChoice(p.value, label) for p, label in PACKAGE_LABELS.items()],
    )
    name = StringField(
        _l("Name"),
        validators=[Optional(), Length(max=200)],
        description=_l(
            "Optional; for example the client group it serves. Defaults to the package."
        ),
    )


class UserForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("E-mail address"), validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField(_l("Role"))  # choices set in the view, with translated labels
    password = PasswordField(
        _l("Initial password"),
        validators=[DataRequired(), Length(min=10, max=200)],
        description=_l("At least 10 characters. Share it with the user in person."),
    )
