"""Importing a migration file end to end in headless Chromium, as a new user does it:
Migratie acties › Importeer een migratiebestand, the wizard, the tus upload with the
upper bar, the dry-run report, confirm, the queue with the lower bar, the worker's run,
the completed page with the result CSV, and unlocking a migrated document.

The file is the demo's desktop office file (``app.demo.write_demo_migration_file``):
three Exact Online administrations, 36 documents, 21 of them approved or rejected, so
those arrive locked ("Gemigreerd").
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from app.demo import DESKTOP_ADMINISTRATIONS, write_demo_migration_file
from app.extensions import db
from app.migration_files import processing
from tests.browser.helpers import screenshot_on_failure
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

BASE = "/settings/migrations/imports"
WAIT_MS = 8_000  # the import page polls every 2 s; a few beats at most

# Records every value the bars take in sessionStorage, which outlives the form's submit
# and the import page's reload (both navigate away the moment the bar is full).
RECORD_BARS = """
(() => {
  const record = (key, value) => {
    const seen = JSON.parse(sessionStorage.getItem(key) || "[]");
    seen.push(value);
    sessionStorage.setItem(key, JSON.stringify(seen));
  };
  const watch = () => {
    for (const [selector, key] of [
      ["[data-tus-progress]", "upper"],
      ["[data-import-progress]", "lower"],
    ]) {
      const bar = document.querySelector(selector);
      if (!bar) continue;
      record(key, Number(bar.value));
      new MutationObserver(() => record(key, Number(bar.value))).observe(bar, {
        attributes: true,
        attributeFilter: ["value"],
      });
    }
  };
  document.addEventListener("DOMContentLoaded", watch);
})();
"""


@pytest.fixture(autouse=True)
def spool_root(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_ROOT", str(tmp_path / "spool"))


def _console_error(message, errors: list[str]) -> None:
    """Keep the page's console errors (a CSP violation, a failed request, a script
    error); the pages name an empty icon, so there is no favicon 404 to forgive."""
    if message.type != "error":
        return
    errors.append(f"{message.text} ({(message.location or {}).get('url', '')})")


def _bar_values(page, key: str) -> list[float]:
    return page.evaluate(f"JSON.parse(sessionStorage.getItem('{key}') || '[]')")


def test_a_superuser_imports_a_migration_file_and_unlocks_a_migrated_document(
    app, build, page, tmp_path
):
    zuid = build.environment("Kantoor Zuid", office_code="ZUID")  # premium
    build.user(zuid, "superuser", email="super@zuid.example", name="Sem Zuid")
    build.connection(zuid, "exact_online", name="Exact Online Zuid")
    file = tmp_path / "migratiebestand-kantoor-oost.zip"
    documents = write_demo_migration_file(str(file))
    total = sum(a.documents for a in DESKTOP_ADMINISTRATIONS)
    locked = sum(a.decided for a in DESKTOP_ADMINISTRATIONS)
    assert (documents, total, locked) == (36, 36, 21)
    db.session.commit()  # end this session's transaction: no snapshot hides the server

    errors: list[str] = []
    page.on("console", lambda m: _console_error(m, errors))
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.on("dialog", lambda dialog: dialog.accept())  # a data-confirm, should one ask
    page.set_default_timeout(5_000)
    page.add_init_script(RECORD_BARS)
    started = time.perf_counter()

    with screenshot_on_failure(page, tmp_path):
        page.goto("/login")
        page.locator('input[name="email"]').fill("super@zuid.example")
        page.locator('input[name="password"]').fill(TEST_PASSWORD)
        page.locator("main form button[type=submit]").click()
        expect(page.locator("nav.mainnav")).to_be_visible()

        # Migratie acties › Importeer een migratiebestand
        page.goto("/settings/migrations/actions")
        choice = page.locator("#choice-import")
        expect(choice).to_contain_text("Importeer een migratiebestand")
        choice.click()
        page.wait_for_url(f"**{BASE}")
        before = page.locator("#import-before")
        expect(before.locator("h2")).to_have_text("Voordat je begint")
        expect(page.locator("#import-preconditions")).to_contain_text("Exact Online Zuid")
        expect(page.locator("#import-refusal")).to_have_count(0)
        before.locator("button[type=submit]").click()

        # Wat importeer je: the defaults stay
        page.wait_for_url(f"**{BASE}/choose")
        expect(page.locator("#import-choose h2")).to_have_text("Wat importeer je")
        expect(page.locator('#import-choose input[type="radio"]:checked')).to_have_count(2)
        page.locator("#import-choose button[type=submit]").click()

        # Upload: choosing the file starts it; a full upper bar submits the form
        page.wait_for_url(f"**{BASE}/upload")
        upload = page.locator("form[data-tus-upload]")
        expect(upload.locator("[data-tus-progress]")).to_have_js_property("value", 0)
        upload.locator("input[data-tus-file]").set_input_files(str(file))
        page.wait_for_url(re.compile(rf".*{BASE}/\d+$"))
        upper = _bar_values(page, "upper")
        assert upper[0] == 0
        assert upper[-1] == 100
        assert upper == sorted(upper)

        # The dry run's report
        section = page.locator("#import")
        expect(section).to_have_attribute("data-import-state", "awaiting_confirmation")
        expect(section.locator("h2")).to_contain_text("migratiebestand-kantoor-oost.zip")
        expect(section.locator("[data-import-label]")).to_have_text("Wacht op bevestiging")
        counts = page.locator("#import-counts")
        expect(counts.locator('[data-count="administrations"]')).to_have_text("3")
        expect(counts.locator('[data-count="new_administrations"]')).to_have_text("3")
        expect(counts.locator('[data-count="documents"]')).to_have_text(str(total))
        expect(counts.locator('[data-count="new_documents"]')).to_have_text(str(total))
        expect(counts.locator('[data-count="conflicts"]')).to_have_text("0")
        expect(counts.locator('[data-count="errors"]')).to_have_text("0")
        expect(page.locator("#import-problems")).to_have_count(0)

        # Confirm: the queue, the lower bar at 10%
        page.locator("#import-confirm button[type=submit]").click()
        expect(section).to_have_attribute("data-import-state", "queued")
        expect(page.locator(".flash-success")).to_contain_text("wachtrij")
        expect(section.locator("[data-import-label]")).to_have_text("In de wachtrij")
        expect(page.locator("#import-queue")).to_contain_text("Plaats in de wachtrij: 1.")
        lower_bar = section.locator("[data-import-progress]")
        expect(lower_bar).to_have_js_property("value", 10)
        # the page keeps polling while queued, and stays at 10%
        with page.expect_response(re.compile(r".*/progress$"), timeout=WAIT_MS) as polled:
            pass
        assert polled.value.json()["percent"] == 10
        expect(lower_bar).to_have_js_property("value", 10)

        # The worker runs; the page sees it finish on its own
        assert processing.process_imports() == 1
        db.session.commit()
        expect(section).to_have_attribute("data-import-state", "completed", timeout=WAIT_MS)
        expect(page.locator("#import-completed")).to_have_text("De import is voltooid.")
        expect(section.locator("[data-import-label]")).to_have_text("Voltooid")
        lower = _bar_values(page, "lower")
        assert lower[0] == 10
        assert lower[-1] == 100  # full before the page reloaded to show the result
        result = page.locator("#import-result")
        expect(result).to_be_visible()
        assert result.get_attribute("href").endswith("/report.csv")
        csv = page.request.get(result.get_attribute("href"))
        assert csv.status == 200
        assert csv.headers["content-type"].startswith("text/csv")
        assert len(csv.text().strip().splitlines()) == 1 + total  # a header, a line each
        items = page.locator("#import-items tbody tr")
        expect(items).to_have_count(3)
        spaak = DESKTOP_ADMINISTRATIONS[0]  # all 14 of its documents decided
        expect(items.filter(has_text=spaak.name)).to_contain_text(
            f"{spaak.documents} / {spaak.documents}"
        )

        # Settings › Administraties › the imported administration
        page.locator('nav.mainnav a[href="/settings/administrations"]').click()
        page.wait_for_url("**/settings/administrations")
        page.get_by_role("link", name=spaak.name, exact=True).click()
        page.wait_for_url(re.compile(r".*/settings/administrations/\d+$"))
        expect(page.locator("h1")).to_contain_text(spaak.name)
        expect(page.locator('[data-filter="migrated"]')).to_contain_text(f"({spaak.decided})")
        locked_rows = page.locator("tr[data-document-id][data-locked]")
        expect(locked_rows).to_have_count(spaak.decided)
        row_id = locked_rows.first.get_attribute("data-document-id")
        row = page.locator(f'tr[data-document-id="{row_id}"]')
        expect(row.locator(".badge.status-migrated")).to_have_text("Gemigreerd")
        expect(row.locator('button[data-action="approve"]')).to_have_count(0)
        expect(row.locator('button[data-action="reject"]')).to_have_count(0)

        with page.expect_response(
            lambda r: r.request.method == "POST" and "/documents/unlock" in r.url
        ) as unlocked:
            row.locator('button[data-action="unlock"]', has_text="Ontgrendel").click()
        assert unlocked.value.status == 302
        expect(page.locator(".flash-success")).to_contain_text("1 document ontgrendeld")
        expect(row).not_to_have_attribute("data-locked", "true")
        expect(row.locator(".badge.status-migrated")).to_have_count(0)
        expect(row).not_to_contain_text("Gemigreerd")
        expect(row.locator('button[data-action="unlock"]')).to_have_count(0)
        # decided before, now decidable again: the other decision is offered
        expect(
            row.locator('button[data-action="approve"], button[data-action="reject"]')
        ).to_have_count(1)
        expect(page.locator('[data-filter="migrated"]')).to_contain_text(f"({spaak.decided - 1})")
        expect(locked_rows).to_have_count(spaak.decided - 1)

    assert errors == []  # CSP violations are console errors too
    assert time.perf_counter() - started < 60
