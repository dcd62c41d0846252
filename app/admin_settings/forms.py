from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from app.admin_settings.models import DocumentKind


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
