from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, HiddenField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.schemas import MAX_RECIPIENTS


class ChecklistForm(FlaskForm):
    """The four points the offering superuser confirms before choosing administrations."""

    users_stay = BooleanField(
        _l("Authorizers, like every other user, do not move to the new environment."),
        validators=[DataRequired(_l("Confirm this point."))],
    )
    no_authorizers_in_flows = BooleanField(
        _l("No authorizer may remain in an authorization flow."),
        validators=[DataRequired(_l("Confirm this point."))],
    )
    no_active_workflows = BooleanField(
        _l("Active workflows must be removed."),
        validators=[DataRequired(_l("Confirm this point."))],
    )
    all_documents_decided = BooleanField(
        _l("Every document must be approved or rejected."),
        validators=[DataRequired(_l("Confirm this point."))],
    )


class SummaryForm(FlaskForm):
    recipient_emails = FieldList(
        StringField(_l("Recipient e-mail address"), validators=[Optional(), Length(max=254)]),
        min_entries=3,
        max_entries=MAX_RECIPIENTS,
    )
    accept_terms = BooleanField(_l("I accept the terms of the transfer."))
    # The office the sender saw named on the summary; the offer goes out only to it.
    confirmed_office = HiddenField()

    def add_recipient_row(self) -> None:
        if len(self.recipient_emails) < MAX_RECIPIENTS:
            self.recipient_emails.append_entry()


class WithdrawForm(FlaskForm):
    """Only its CSRF token: the confirmation happens in the browser."""


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
