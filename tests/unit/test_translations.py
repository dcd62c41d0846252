"""Both catalogues are complete: every string the code and templates mark for
translation has a Dutch and an English text, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "_l": None,
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
    "N_plural": (1, 2),
}
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifr]")


def extracted_messages() -> set[str]:
    """The msgids in app/ and templates/, extracted as `make translations-update` does."""
    found: set[str] = set()
    for folder, method in (("app", "python"), ("templates", "jinja2")):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder,
            method_map=[("**.py", method)]
            if method == "python"
            else [("**.html", method), ("**.txt", method)],
            keywords=KEYWORDS,
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalogue(lang: str):
    with (ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang, abort_invalid=True)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_marked_string_is_translated_in_the_catalogue(lang):
    translations = {}
    for message in catalogue(lang):
        if message.id and not message.fuzzy:
            key = message.id[0] if message.pluralizable else message.id
            strings = message.string if message.pluralizable else (message.string,)
            translations[key] = strings
    missing = sorted(
        m for m in extracted_messages() if not all(s.strip() for s in translations.get(m, ("",)))
    )
    assert missing == [], f"{lang}: untranslated: {missing}"


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_translations_keep_the_placeholders_of_their_message(lang):
    wrong = []
    for message in catalogue(lang):
        if not message.id:
            continue
        ids = list(message.id) if message.pluralizable else [message.id]
        strings = list(message.string) if message.pluralizable else [message.string]
        wanted = set().union(*(PLACEHOLDER.findall(i) for i in ids))
        wrong += [s for s in strings if s and set(PLACEHOLDER.findall(s)) != wanted]
    assert wrong == []


def test_the_dutch_catalogue_really_is_dutch():
    nl = {m.id: m.string for m in catalogue("nl") if m.id and not m.pluralizable}
    assert nl["Administrations"] == "Administraties"
    assert nl["Log in"] == "Inloggen"
    same = [k for k, v in nl.items() if k == v and len(k) > 12]
    # A few long strings may coincide (names, codes); most must differ.
    assert len(same) < 5, same
