"""The audit trail as support reads it: each event a sentence in the reader's language
(never an action code or a dump of its details), the global page's date range and its
CSV download of exactly the filtered events, the per-transfer filter that lists only
what happened there, and a sentence in both languages for every action any module
records."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from flask_babel import force_locale
from sqlalchemy import select, update

from app import audit, audit_text
from app.admin_settings.domain import DECISIONS
from app.audit import AuditEvent
from app.db import utcnow
from app.extensions import db
from app.support import services as support
from app.transfers.copying import copy_waiting
from tests.helpers import accept_all, fresh, offer, spreadsheet
from tests.integration.pages import field_errors, text_of

ROOT = Path(__file__).resolve().parents[2]
SUPPORT_EMAIL = "support@overdracht.example"
LONG_AGO = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def support_user(build):
    return build.user(None, "support", email=SUPPORT_EMAIL, name="Sam Support")


def console_in(login, user, language: str):
    user.language = language
    db.session.commit()
    return login(user)


@pytest.fixture
def claimed(build, office, other_office):
    """An offer of one administration from Kantoor Noord, claimed by Kantoor Zuid and
    copied: the transfer and its administration."""
    administration = build.administration(office.connection, name="Bakkerij De Vries")
    build.document(administration, "approved")
    transfer, code = offer(office.superuser, [administration])
    accept_all(other_office.superuser, transfer, code, other_office.connection)
    assert copy_waiting() == 1
    fresh()
    return transfer, administration


def page(client, url: str, status: int = 200) -> str:
    response = client.get_page(url)
    assert response.status_code == status, (url, response.status_code)
    return response.get_data(as_text=True)


def events_table(html: str) -> str:
    match = re.search(r'<table class="table" data-table="audit-events">(.*?)</table>', html, re.S)
    assert match, "no audit table"
    return match.group(1)


def table_text(html: str) -> str:
    """What a reader sees in the events table (attributes left out)."""
    return text_of(events_table(html))


def actions_listed(html: str) -> list[str]:
    return re.findall(r'<tr data-action="([\w.-]+)"', events_table(html))


def options(html: str, select_html: str) -> dict[str, str]:
    """value -> text of the options of the first ``<select>`` matching ``select_html``."""
    match = re.search(select_html + r"(.*?)</select>", html, re.S)
    assert match, select_html
    return {
        v: text_of(t).strip()
        for v, t in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', match.group(1))
    }


def csv_of(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return text, *spreadsheet(text)


def move(action: str, when: datetime) -> None:
    db.session.execute(
        update(AuditEvent).where(AuditEvent.action == action).values(created_at=when)
    )
    db.session.commit()


# --------------------------------------------------------------------------- sentences


def test_the_audit_page_tells_in_dutch_what_happened_in_sentences(
    login, support_user, claimed, office, other_office
):
    transfer, _administration = claimed
    console = console_in(login, support_user, "nl")

    html = page(console, "/support/audit")
    text = table_text(html)

    assert f"Kantoor Zuid heeft 1 administratie overgenomen (overdracht {transfer.id})" in text
    assert (
        f"super@noord.example heeft overdracht {transfer.id} aangeboden aan Kantoor Zuid "
        "(1 administratie)"
    ) in text
    assert "Bakkerij De Vries" in text and "is gekopieerd naar Kantoor Zuid (1 document)" in text
    assert f"Overdracht {transfer.id} is afgerond" in text
    assert "super@zuid.example heeft overdracht" in text and "1 administratie geaccepteerd" in text
    # Details the sentence leaves out, with Dutch labels.
    assert "Versie voorwaarden:" in text and "Ontvangers: super@zuid.example" in text
    assert "Supergebruiker" in text
    for code in ("transfer_claimed", "transfer_offered", "claim_submitted", "mail_queued"):
        assert code not in text
        assert code in actions_listed(html)  # still there for scripts and tests
    for dump in ("{", "}", "administration_ids", "terms_version", "target_environment_id"):
        assert dump not in text
    # The filter lists speak Dutch too.
    listed = options(html, r'<select id="action" name="action">')
    assert listed["transfer_claimed"] == "Overdracht overgenomen"
    assert listed["transfer_offered"] == "Overdracht aangeboden"
    assert listed["login"] == "Ingelogd"


def test_the_audit_page_reads_in_english_for_an_english_reader(
    login, support_user, claimed, office, other_office
):
    transfer, _administration = claimed
    console = console_in(login, support_user, "en")

    html = page(console, "/support/audit")
    text = table_text(html)

    assert f"Kantoor Zuid claimed 1 administration (transfer {transfer.id})" in text
    assert (
        f"super@noord.example offered transfer {transfer.id} to Kantoor Zuid (1 administration)"
    ) in text
    assert f"{SUPPORT_EMAIL} logged in" in text
    assert "heeft" not in text and "transfer_claimed" not in text and "{" not in text
    assert options(html, r'<select id="action" name="action">')["transfer_claimed"] == (
        "Transfer claimed"
    )


def test_an_unknown_action_or_missing_details_still_read_as_a_sentence(login, support_user, office):
    audit.record(
        "something_new",
        actor=office.superuser,
        object_type="thing",
        object_id=1,
        environment_id=office.environment.id,
        details={"secret_looking_key": "x", "nested": {"a": 1}},
    )
    audit.record(
        "transfer_offered",
        actor=office.superuser,
        object_type="transfer",
        object_id=None,
        environment_id=office.environment.id,
        details={"administration_ids": "not a list"},
    )
    db.session.commit()
    console = console_in(login, support_user, "nl")

    text = table_text(page(console, "/support/audit"))

    assert "super@noord.example: Overige gebeurtenis (something_new)" in text
    assert "super@noord.example: Overdracht aangeboden" in text
    assert "secret_looking_key" not in text and "{" not in text


# --------------------------------------------------------------------------- date range


def test_the_date_range_keeps_the_days_it_names_and_nothing_else(
    login, support_user, claimed, office, other_office
):
    move("transfer_offered", LONG_AGO)
    console = console_in(login, support_user, "en")

    march = actions_listed(page(console, "/support/audit?from=2025-03-01&to=2025-03-31"))
    assert march == ["transfer_offered"]
    # Both ends are included, as days in the reader's time zone.
    assert actions_listed(page(console, "/support/audit?from=2025-03-10&to=2025-03-10")) == [
        "transfer_offered"
    ]
    assert actions_listed(page(console, "/support/audit?to=2025-03-09")) == []
    later = actions_listed(page(console, "/support/audit?from=2025-03-11"))
    assert "transfer_offered" not in later and "transfer_claimed" in later
    # With the other filters.
    both = page(
        console,
        f"/support/audit?from=2025-03-01&to=2025-03-31&environment={other_office.environment.id}",
    )
    assert actions_listed(both) == []
    html = page(console, "/support/audit?from=2025-03-01&to=2025-03-31")
    assert 'value="2025-03-01"' in html and 'type="date"' in html


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=2025-13-01", "from", "Enter a date as yyyy-mm-dd, for example 2026-12-01."),
        ("to=yesterday", "to", "Enter a date as yyyy-mm-dd, for example 2026-12-01."),
        ("from=0001-01-01", "from", "Enter a date as yyyy-mm-dd, for example 2026-12-01."),
        ("to=9999-12-31", "to", "Enter a date as yyyy-mm-dd, for example 2026-12-01."),
        ("from=2025-04-01&to=2025-03-01", "to", "The start date is after the end date."),
    ],
)
def test_a_bad_date_range_is_explained_on_the_page(
    login, support_user, office, query, field, message
):
    console = console_in(login, support_user, "en")

    html = page(console, f"/support/audit?{query}", status=400)

    assert field_errors(html, field) == [message]
    assert 'data-table="audit-events"' not in html
    assert console.get(f"/support/audit.csv?{query}").status_code == 400


# --------------------------------------------------------------------------- CSV


def test_the_csv_holds_the_filtered_events_as_sentences_in_the_readers_language(
    login, support_user, claimed, office, other_office
):
    transfer, _administration = claimed
    move("transfer_offered", LONG_AGO)
    console = console_in(login, support_user, "nl")

    text, block, rows = csv_of(console, "/support/audit.csv")

    assert text.splitlines()[0].count(";") == 1  # the header block is ;-separated too
    assert list(rows[0]) == [
        "Tijdstip",
        "Uitgevoerd door",
        "Rol",
        "Kantoor",
        "Actie",
        "Gebeurtenis",
        "Herkomst",
    ]
    fresh()
    assert int(block["Regels"]) == len(rows)
    assert len(rows) == db.session.query(AuditEvent).count()
    (claim_row,) = [r for r in rows if r["Actie"] == "Overdracht overgenomen"]
    assert claim_row["Gebeurtenis"].startswith(
        f"Kantoor Zuid heeft 1 administratie overgenomen (overdracht {transfer.id})"
    )
    assert claim_row["Uitgevoerd door"] == "super@zuid.example"
    assert claim_row["Rol"] == "Supergebruiker"
    assert claim_row["Kantoor"] == "Kantoor Noord"
    assert all("transfer_" not in r["Gebeurtenis"] and "{" not in r["Gebeurtenis"] for r in rows)

    _text, _block, offered = csv_of(
        console,
        f"/support/audit.csv?environment={office.environment.id}&action=transfer_offered"
        "&from=2025-03-01&to=2025-03-31",
    )
    assert [r["Actie"] for r in offered] == ["Overdracht aangeboden"]
    assert offered[0]["Gebeurtenis"].startswith(
        f"super@noord.example heeft overdracht {transfer.id} aangeboden aan Kantoor Zuid"
    )
    _text, _block, none = csv_of(console, "/support/audit.csv?to=2025-03-09")
    assert none == []

    english = console_in(login, support_user, "en")
    _text, _block, rows = csv_of(english, "/support/audit.csv?action=transfer_claimed")
    assert [r["Event"] for r in rows] == [
        f"Kantoor Zuid claimed 1 administration (transfer {transfer.id})"
    ]
    assert rows[0]["Action"] == "Transfer claimed" and rows[0]["Role"] == "Superuser"


def test_the_csv_holds_every_page_of_events_in_order(login, support_user, office, monkeypatch):
    # More than one page of the screen (50) and several batches of the export, with
    # events that share a moment: none lost, none twice.
    same_moment = utcnow().replace(microsecond=0)
    for n in range(23):
        event = audit.record(
            "api_token_created",
            actor=office.superuser,
            object_type="api_token",
            object_id=n + 1,
            environment_id=office.environment.id,
            origin="tests",
            details={"name": f"token {n:02d}"},
        )
        if n % 3 == 0:
            event.created_at = same_moment
    for _n in range(40):
        audit.record(
            "logout",
            actor=office.superuser,
            object_type="user",
            object_id=office.superuser.id,
            environment_id=office.environment.id,
            origin="tests",
        )
    db.session.commit()
    monkeypatch.setattr(support, "AUDIT_BATCH", 4)
    console = console_in(login, support_user, "en")
    assert 'rel="next"' in page(console, "/support/audit")

    _text, block, rows = csv_of(console, f"/support/audit.csv?environment={office.environment.id}")

    tokens = sorted(r["Event"] for r in rows if r["Action"] == "API token created")
    assert tokens == [f"super@noord.example created API token “token {n:02d}”" for n in range(23)]
    assert sum(r["Action"] == "Logged out" for r in rows) == 40
    assert len(rows) == 63 == int(block["Lines"])
    times = [r["Time"] for r in rows]
    assert times == sorted(times, reverse=True)


def test_the_csv_is_for_support_only(login, office, support_user):
    for user in (office.superuser, office.user):
        assert login(user).get("/support/audit.csv").status_code == 404


# --------------------------------------------------------------------------- per transfer


def test_the_transfer_page_filter_lists_only_the_actions_of_that_transfer(
    login, support_user, claimed, office, other_office
):
    transfer, _administration = claimed
    console = console_in(login, support_user, "nl")

    html = page(console, f"/support/transfers/{transfer.id}")

    listed = options(html, r'<select name="action"[^>]*>')
    assert listed.pop("") == "Alle acties"
    assert (
        set(listed)
        == set(actions_listed(html))
        == {
            "transfer_offered",
            "mail_queued",
            "claim_submitted",
            "transfer_claimed",
            "administration_migrated",
            "transfer_completed",
        }
    )
    assert listed["transfer_claimed"] == "Overdracht overgenomen"
    assert listed["administration_migrated"] == "Administratie gekopieerd"
    assert "Ingelogd" not in listed.values()  # a login happened, but not in this transfer

    filtered = page(console, f"/support/transfers/{transfer.id}?action=transfer_claimed")
    assert actions_listed(filtered) == ["transfer_claimed"]
    assert 'value="transfer_claimed" selected' in filtered
    assert "Kantoor Zuid heeft 1 administratie overgenomen" in table_text(filtered)


def test_a_page_of_events_loads_its_names_in_a_few_queries(
    app, login, support_user, claimed, office, other_office
):
    from sqlalchemy import event as sa_event

    fresh()
    events = list(db.session.scalars(select(AuditEvent)))
    assert len(events) > 8
    statements = []

    def count(*_args):
        statements.append(1)

    engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        with app.test_request_context(), force_locale("nl"):
            lines = audit_text.readable(events)
            assert all(line.own_sentence for line in lines)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 6


# --------------------------------------------------------------------------- every action


def recorded_actions() -> dict[str, dict]:
    """Every action name an ``audit.record(...)`` call in ``app/`` can record, with the
    object type and detail keys its call names (when written out)."""
    found: dict[str, dict] = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            is_record = (
                isinstance(func, ast.Attribute)
                and func.attr == "record"
                and isinstance(func.value, ast.Name)
                and func.value.id == "audit"
            )
            if not is_record:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            keywords = {k.arg: k.value for k in node.keywords}
            object_type = keywords.get("object_type")
            details = keywords.get("details")
            facts = {
                "object_type": object_type.value if isinstance(object_type, ast.Constant) else "",
                "keys": [k.value for k in details.keys if isinstance(k, ast.Constant)]
                if isinstance(details, ast.Dict)
                else None,
                "where": where,
            }
            for name in _names(node.args[0], where):
                found[name] = facts
    return found


def _names(node: ast.expr, where: str) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _names(node.body, where) + _names(node.orelse, where)
    if isinstance(node, ast.JoinedStr) and ast.unparse(node) == "f'documents_{status.value}'":
        return [f"documents_{status.value}" for status in DECISIONS.values()]
    raise AssertionError(f"{where}: teach this test which action names this call records")


# Detail values to try each sentence with, by key; and the details of calls that pass
# a variable rather than a dict.
SAMPLE_VALUES = {
    "administration_ids": [3, 4],
    "recipients": ["super@zuid.example"],
    "expires_at": "2026-12-01T10:00:00+00:00",
    "until": "2026-12-01T10:00:00+00:00",
    "checklist_confirmed": True,
    "extensions": 1,
    "claim_id": 5,
    "target_environment_id": 2,
    "accepted": [{"item_id": 7, "connection_id": 3}],
    "rejected": [{"item_id": 8, "message": "Niet voor ons"}],
    "fee_per_administration": "25.00",
    "currency": "EUR",
    "documents": 5,
    "documents_in_file": 9,
    "item_ids": [7],
    "revoked_item_ids": [7],
    "document_ids": [1, 2],
    "count": 2,
    "size": 2048,
    "length": 4096,
    "offset": 1024,
    "position": 1,
    "administration_id": 3,
    "authorizer_id": 9,
    "transfer_id": 7,
    "source_administration_id": 3,
    "target_administration_id": 4,
    "role": "user",
    "email": "nieuw@noord.example",
    "package": "exact_online",
    "import_type": "combined",
    "conflicts": "skip",
    "kind": "transfer_offered",
    "to": "super@zuid.example",
    "ref_id": 7,
}
SAMPLE_DETAILS = {"import_completed": {"administrations": 2, "documents": 9, "failed": 0}}
NAMES = audit_text.Names(
    offices={1: "Kantoor Noord", 2: "Kantoor Zuid"},
    administrations={3: "Bakkerij De Vries (1001)"},
    items={7: "Bakkerij De Vries (1001)"},
    imports={7: "noord.zip"},
    receivers={7: 2},
    accepted={7: 1},
)


def sample_event(action: str, facts: dict) -> AuditEvent:
    if action in SAMPLE_DETAILS:
        details = SAMPLE_DETAILS[action]
    else:
        details = {k: SAMPLE_VALUES.get(k, "Een tekst") for k in facts["keys"] or []}
    return AuditEvent(
        action=action,
        actor_email="super@noord.example",
        actor_role="superuser",
        environment_id=1,
        object_type=facts["object_type"],
        object_id=7 if facts["object_type"] != "administration" else 3,
        origin="web 127.0.0.1",
        details=details,
    )


def test_every_recorded_action_has_a_label_and_a_sentence_in_dutch_and_english(app):
    recorded = recorded_actions()
    assert {"transfer_claimed", "documents_approved", "logout", "upload.created"} <= set(recorded)
    assert sorted(set(recorded) - set(audit_text.ACTIONS)) == [], "actions without a sentence"

    for action, facts in recorded.items():
        event = sample_event(action, facts)
        said = {}
        for language in ("nl", "en"):
            with app.test_request_context(), force_locale(language):
                (line,) = audit_text.readable([event], NAMES)
                said[language] = (audit_text.action_label(action), line.sentence)
                assert line.own_sentence, (facts["where"], language, line.sentence)
                assert "%(" not in line.sentence and action not in line.sentence
                assert "{" not in line.sentence, line.sentence
        assert said["nl"][1] != said["en"][1], (action, said)


def test_every_text_of_the_audit_trail_is_translated_in_both_catalogues():
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "N_": None}
    sources = [
        ("python", "app/audit_text.py"),
        ("python", "app/support/views.py"),
        ("jinja2", "templates/support/audit.html"),
        ("jinja2", "templates/support/_events.html"),
    ]
    msgids = set()
    for method, path in sources:
        with open(ROOT / path, "rb") as fh:
            for _line, message, _comments, _context in extract(method, fh, keywords=keywords):
                msgids.add(message if isinstance(message, str) else message[0])
    assert len(msgids) > 150
    for language in ("nl", "en"):
        with open(ROOT / f"translations/{language}/LC_MESSAGES/messages.po", "rb") as fh:
            catalogue = read_po(fh, locale=language)
        missing = []
        for msgid in sorted(msgids):
            message = catalogue.get(msgid)
            strings = [] if message is None else message.string
            if isinstance(strings, str):
                strings = [strings]
            if not strings or not all(strings):
                missing.append(msgid)
        assert missing == [], (language, missing)
