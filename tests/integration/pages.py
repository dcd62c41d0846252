"""Small readers for the rendered pages: what a user would see, found by stable markers."""

from __future__ import annotations

import re
from html import unescape


def html_lang(html: str) -> str | None:
    match = re.search(r'<html lang="([^"]*)"', html)
    return match.group(1) if match else None


def flash_categories(html: str) -> list[str]:
    """The categories of the flashed messages on a page (``error``, ``success``, ...)."""
    return re.findall(r'class="flash flash-(\w+)"', html)


def field_errors(html: str, field: str) -> list[str]:
    """The error messages shown under one form field."""
    match = re.search(rf'<ul class="errors" id="{field}-errors">(.*?)</ul>', html, re.DOTALL)
    if not match:
        return []
    return [unescape(m.strip()) for m in re.findall(r"<li>(.*?)</li>", match.group(1), re.DOTALL)]


def all_field_errors(html: str) -> list[str]:
    messages: list[str] = []
    for block in re.findall(r'<ul class="errors"[^>]*>(.*?)</ul>', html, re.DOTALL):
        messages += [unescape(m.strip()) for m in re.findall(r"<li>(.*?)</li>", block, re.DOTALL)]
    return messages


def administration_row(html: str, administration_id: int) -> str:
    """The HTML of one administration's row on Settings › Administraties."""
    match = re.search(
        rf'<tr data-administration-id="{administration_id}">(.*?)</tr>', html, re.DOTALL
    )
    assert match, f"no row for administration {administration_id}"
    return match.group(1)


def row_counts(html: str, administration_id: int) -> dict[str, int]:
    """The numbers in an administration's row, keyed by their ``data-count``."""
    row = administration_row(html, administration_id)
    return {name: int(value) for name, value in re.findall(r'data-count="(\w+)">\s*(\d+)\s*<', row)}


def row_blockers(html: str, administration_id: int) -> list[str]:
    row = administration_row(html, administration_id)
    return [
        unescape(b.strip()) for b in re.findall(r'<li class="blocker">(.*?)</li>', row, re.DOTALL)
    ]


def document_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-document-id="(\d+)"', html)]


def text_of(html: str) -> str:
    """The page's text with tags removed and entities decoded, for message checks."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))
