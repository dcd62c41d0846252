from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length


class RevokeForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason (both offices receive it)"),
        validators=[
            DataRequired(_l("Give the reason for revoking.")),
            Length(min=5, max=1000, message=_l("Give the reason in 5 to 1,000 characters.")),
        ],
    )
