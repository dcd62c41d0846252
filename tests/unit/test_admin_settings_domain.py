"""Pure rules of app.admin_settings.domain: no database, no requests."""

from __future__ import annotations

import pytest

from app.admin_settings.domain import (
    AdministrationFacts,
    Blocker,
    BlockerKind,
    DecisionError,
    blockers,
    decision_status,
    inbound_email,
    is_read_only,
    safe_filename,
    sniff_content_type,
)
from app.admin_settings.models import AdministrationState, DocumentStatus

# --- blockers -------------------------------------------------------------------------------


def test_clean_facts_have_no_blockers():
    assert blockers(AdministrationFacts()) == []


def test_decided_documents_do_not_block():
    facts = AdministrationFacts(approved_documents=7, rejected_documents=2)
    assert blockers(facts) == []


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (AdministrationFacts(authorizer_steps=2), Blocker(BlockerKind.AUTHORIZERS_IN_FLOWS, 2)),
        (AdministrationFacts(active_workflows=1), Blocker(BlockerKind.ACTIVE_WORKFLOWS, 1)),
        (AdministrationFacts(pending_documents=5), Blocker(BlockerKind.UNDECIDED_DOCUMENTS, 5)),
    ],
    ids=["authorizers", "workflows", "undecided"],
)
def test_each_kind_of_blocker_alone(facts, expected):
    assert blockers(facts) == [expected]


def test_all_blockers_in_checklist_order_with_their_counts():
    facts = AdministrationFacts(
        pending_documents=3,
        approved_documents=4,
        rejected_documents=1,
        active_workflows=2,
        authorizer_steps=6,
    )
    found = blockers(facts)
    assert [b.kind for b in found] == [
        BlockerKind.AUTHORIZERS_IN_FLOWS,
        BlockerKind.ACTIVE_WORKFLOWS,
        BlockerKind.UNDECIDED_DOCUMENTS,
    ]
    assert [b.count for b in found] == [6, 2, 3]


def test_blocker_kinds_are_the_strings_templates_compare_with():
    assert [k.value for k in BlockerKind] == [
        "authorizers_in_flows",
        "active_workflows",
        "undecided_documents",
    ]


def test_total_documents_counts_every_status_and_nothing_else():
    facts = AdministrationFacts(
        pending_documents=3,
        approved_documents=4,
        rejected_documents=5,
        active_workflows=100,
        authorizer_steps=1000,
    )
    assert facts.total_documents == 12
    assert AdministrationFacts().total_documents == 0


# --- inbound e-mail address -----------------------------------------------------------------


def test_inbound_email_format():
    assert inbound_email("noord", "1001", "in.overdracht.example") == (
        "noord.1001@in.overdracht.example"
    )


def test_inbound_email_is_lower_case():
    assert inbound_email("NOORD", "ABC-12", "IN.Overdracht.Example") == (
        "noord.abc-12@in.overdracht.example"
    )


@pytest.mark.parametrize(
    ("office", "code", "expected"),
    [
        ("  NOORD  ", " 1001 ", "noord.1001@mail.example"),
        ("Kantoor Noord", "A/B 12", "kantoor-noord.a-b-12@mail.example"),
        ("noord!", "__1001__", "noord.1001@mail.example"),
        ("no.ord", "10@01", "no-ord.10-01@mail.example"),
        ("Café", "x+y", "caf.x-y@mail.example"),
    ],
)
def test_inbound_email_cleans_odd_characters(office, code, expected):
    address = inbound_email(office, code, "mail.example")
    assert address == expected
    local, _, domain = address.partition("@")
    assert domain == "mail.example"
    assert local.count(".") == 1  # exactly the separator between the two parts


@pytest.mark.parametrize(
    ("office", "code"),
    [("", "1001"), ("noord", ""), ("   ", "1001"), ("noord", "!!!"), ("...", "1001")],
)
def test_inbound_email_refuses_an_empty_part(office, code):
    with pytest.raises(ValueError):
        inbound_email(office, code, "mail.example")


# --- content sniffing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "content_type"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\xff\xd8\xff\xe1\x00\x18Exif\x00\x00", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
    ],
    ids=["pdf", "png", "jpeg-jfif", "jpeg-exif", "gif87", "gif89", "tiff-le", "tiff-be", "webp"],
)
def test_sniff_recognises_pdf_and_images(head, content_type):
    assert sniff_content_type(head) == content_type


@pytest.mark.parametrize(
    "head",
    [
        b"Factuur 2024-001\nBedrag: 121,00\n",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
        b"",
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        b"<html><head><title>%PDF-</title></head></html>",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # a RIFF file that is not WebP
        b"RIFF",  # too short to be WebP
        b" %PDF-1.4",  # the signature must be at the very start
        b"PK\x03\x04\x14\x00",  # zip / docx
    ],
    ids=[
        "text",
        "exe",
        "empty",
        "html",
        "html-mentioning-pdf",
        "wav",
        "short-riff",
        "late-pdf",
        "zip",
    ],
)
def test_sniff_refuses_everything_else(head):
    assert sniff_content_type(head) is None


# --- display filenames ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("factuur.pdf", "factuur.pdf"),
        ("/etc/passwd", "passwd"),
        ("../../secret/factuur.pdf", "factuur.pdf"),
        ("C:\\Users\\sanne\\Documents\\bon.jpg", "bon.jpg"),
        ("map\\sub/bon.jpg", "bon.jpg"),
        ("  factuur 2024.pdf  ", "factuur 2024.pdf"),
        ("fac\x00tuur\r\n.pdf", "factuur.pdf"),
        ("\x1b[31mrood\x7f.pdf", "[31mrood.pdf"),
        ("nota\u202egnp.pdf", "notagnp.pdf"),  # right-to-left override is not printable
        ("Café Ünïcode €.pdf", "Café Ünïcode €.pdf"),
    ],
)
def test_safe_filename(given, expected):
    assert safe_filename(given) == expected


@pytest.mark.parametrize("given", ["", "   ", "/", "map/", "C:\\map\\", "\x00\x01\x02", "\t\n"])
def test_safe_filename_falls_back_to_document(given):
    assert safe_filename(given) == "document"


def test_safe_filename_is_capped_at_255_characters():
    assert safe_filename("a" * 1000 + ".pdf") == "a" * 255
    assert len(safe_filename("é" * 300)) == 255
    exactly = "b" * 251 + ".pdf"
    assert safe_filename(exactly) == exactly


def test_safe_filename_output_never_contains_separators_or_control_characters():
    nasty = "..\\../x/\x00y\\z\x1f\u2028.pdf"
    result = safe_filename(nasty)
    assert "/" not in result and "\\" not in result
    assert result.isprintable()


# --- decisions and state --------------------------------------------------------------------


def test_decision_status_for_the_two_decisions():
    assert decision_status("approve") is DocumentStatus.APPROVED
    assert decision_status("reject") is DocumentStatus.REJECTED


@pytest.mark.parametrize("action", ["", "pending", "approved", "APPROVE", " approve", "delete"])
def test_decision_status_refuses_anything_else(action):
    with pytest.raises(DecisionError, match="unknown decision"):
        decision_status(action)


def test_decision_error_is_a_value_error():
    # Services catch ValueError around decision_status.
    assert issubclass(DecisionError, ValueError)


@pytest.mark.parametrize(
    ("state", "read_only"),
    [
        (AdministrationState.ACTIVE, False),
        (AdministrationState.OFFERED, False),
        (AdministrationState.MIGRATED, True),
    ],
)
def test_only_a_migrated_administration_is_read_only(state, read_only):
    assert is_read_only(state) is read_only
