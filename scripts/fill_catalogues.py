"""Fill new catalogue entries after `make translations-update`.

English gets msgstr = msgid for every empty entry. Dutch gets the texts from a
tab-separated file of `English<TAB>Dutch` lines (plural: `one|other<TAB>één|meer`);
without one, it lists the Dutch entries that still need a text.

    .venv/bin/python scripts/fill_catalogues.py [nl.tsv]
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent


def path(lang: str) -> Path:
    return ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po"


def load(lang: str):
    with path(lang).open("rb") as fh:
        return read_po(fh, locale=lang)


def save(lang: str, catalog) -> None:
    with path(lang).open("wb") as fh:
        write_po(fh, catalog, width=100, omit_header=False)


def main(argv: list[str]) -> int:
    en = load("en")
    for message in en:
        if message.id and (
            message.fuzzy or not all(message.string if message.pluralizable else [message.string])
        ):
            message.string = tuple(message.id) if message.pluralizable else message.id
            message.flags.discard("fuzzy")
    save("en", en)

    nl = load("nl")
    given: dict[str, str] = {}
    if len(argv) > 1:
        for line in Path(argv[1]).read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                source, target = line.split("\t", 1)
                given[source] = target
    todo = []
    for message in nl:
        if not message.id:
            continue
        key = "|".join(message.id) if message.pluralizable else message.id
        complete = all(message.string) if message.pluralizable else bool(message.string)
        if key in given:
            message.string = tuple(given[key].split("|")) if message.pluralizable else given[key]
            message.flags.discard("fuzzy")
        elif not complete or message.fuzzy:
            todo.append(key)
    save("nl", nl)
    for key in todo:
        print(f"untranslated (nl): {key}")
    return 1 if todo else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
