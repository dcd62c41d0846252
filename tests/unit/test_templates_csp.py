"""The site's CSP (``style-src 'self'; script-src 'self'``) blocks inline styles and
scripts: no page template may carry one, or the browser silently drops it (a progress
bar that never shows its figure). Mails are not pages and keep their inline styles."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE = re.compile(
    r"""\sstyle\s*=|<style[\s>]|<script(?![^>]*\ssrc=)[^>]*>|\son[a-z]+\s*=""", re.I
)


def page_templates() -> list[Path]:
    return [p for p in TEMPLATES.rglob("*.html") if "email" not in p.relative_to(TEMPLATES).parts]


def test_there_are_page_templates_to_check():
    assert len(page_templates()) > 20


def test_no_page_template_has_an_inline_style_script_or_event_handler():
    found = [
        f"{path.relative_to(TEMPLATES)}:{n}: {line.strip()[:80]}"
        for path in page_templates()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if INLINE.search(line)
    ]
    assert found == []
