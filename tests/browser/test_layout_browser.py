"""Layout at 1366 × 768 (a common office laptop) over the demo's data: every table fits
its card or scrolls inside it, the page never scrolls sideways, and the message after
an action is in view where the page lands."""

from __future__ import annotations

import pytest
from flask import current_app
from playwright.sync_api import expect
from sqlalchemy import select

from app.admin_settings.models import Administration
from app.auth.models import User
from app.extensions import db
from tests.browser.helpers import screenshot_on_failure
from tests.helpers import offer

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1366, 768

# Per table: does its right edge stay within its card's content box, or does it sit in
# a scroll container (overflow-x auto/scroll) that does?
MEASURE = """() => {
  const out = [];
  for (const table of document.querySelectorAll("main table")) {
    const card = table.closest(".card") || document.querySelector("main");
    const style = getComputedStyle(card);
    const inner = card.getBoundingClientRect().right
      - parseFloat(style.paddingRight) - parseFloat(style.borderRightWidth);
    let scroller = null;
    for (let el = table.parentElement; el && el !== card; el = el.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(el).overflowX)) { scroller = el; break; }
    }
    const box = (scroller || table).getBoundingClientRect();
    out.push({
      table: table.dataset.table || table.className,
      right: Math.round(box.right), inner: Math.round(inner), scrolls: !!scroller,
    });
  }
  return {tables: out, scrollWidth: document.documentElement.scrollWidth};
}"""

IN_VIEW = """(el) => {
  const r = el.getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight
    && r.left >= 0 && r.right <= window.innerWidth;
}"""


@pytest.fixture
def demo(app):
    """The demo's offices, administrations, documents and transfers, plus one open offer
    from Noord to Zuid (the demo's own are claimed), so it can be extended."""
    from app.demo import seed_demo

    seed_demo(reset=True, echo=lambda *_: None)
    db.session.commit()
    noord = db.session.scalars(select(User).where(User.email == "super@noord.example")).one()

    def administration(code: str) -> Administration:
        return db.session.scalars(
            select(Administration).where(
                Administration.environment_id == noord.environment_id,
                Administration.code == code,
            )
        ).one()

    transfer, _code = offer(noord, [administration("2001")])
    ids = {
        "transfer": transfer.id,
        "clean": administration("1001").id,  # 2,000 documents, all decided
        "pending": administration("1003").id,  # undecided documents
    }
    db.session.commit()
    return ids


def log_in(page, email: str) -> None:
    page.goto("/login")
    page.locator('input[name="email"]').fill(email)
    page.locator('input[name="password"]').fill(current_app.config["DEMO_PASSWORD"])
    page.locator("main form button[type=submit]").click()
    expect(page.locator("nav.mainnav")).to_be_visible()


def misfits(page, paths) -> list[str]:
    """What does not fit on each page: tables wider than their card, sideways scrolling."""
    found = []
    for path in paths:
        page.goto(path)
        measured = page.evaluate(MEASURE)
        if not measured["tables"]:
            found.append(f"{path}: no table to measure")
        spilling = [t for t in measured["tables"] if t["right"] > t["inner"] + 1]
        if spilling:
            found.append(f"{path}: tables wider than their card: {spilling}")
        if measured["scrollWidth"] > WIDTH:
            found.append(f"{path}: the page scrolls sideways ({measured['scrollWidth']} px)")
    return found


def test_tables_fit_their_cards_at_1366_and_flashes_are_in_view(
    demo, browser, live_server, tmp_path
):
    context = browser.new_context(
        base_url=live_server, locale="nl-NL", viewport={"width": WIDTH, "height": HEIGHT}
    )
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        with screenshot_on_failure(page, tmp_path):
            log_in(page, "super@noord.example")
            office_pages = (
                "/settings/migrations",
                f"/settings/migrations/{demo['transfer']}",
                "/settings/administrations",
                f"/settings/administrations/{demo['clean']}",
                f"/settings/administrations/{demo['pending']}",
            )
            problems = misfits(page, office_pages)
            assert not problems, "\n".join(problems)

            # Extending the offer: the page lands at its top, the message is in view.
            page.goto(f"/settings/migrations/{demo['transfer']}")
            page.locator("#extend").click()
            flash = page.locator("main .flash-success")
            expect(flash).to_contain_text("verlengd")
            assert flash.evaluate(IN_VIEW), "the message after extending is out of view"

            # Approving a document far down a long page lands on #documents: the message
            # is shown there, not at the top of the page out of sight.
            page.goto(f"/settings/administrations/{demo['pending']}?status=pending#documents")
            page.locator('#documents button[data-action="approve"]').first.click()
            page.wait_for_url("**#documents")
            flash = page.locator("main .flash-success")
            expect(flash).to_be_visible()
            assert page.evaluate("window.scrollY") > 0, "the page should land on #documents"
            assert flash.evaluate(IN_VIEW), "the message after approving is out of view"

            # Support's lists at the same width.
            context.clear_cookies()
            log_in(page, "support@overdracht.example")
            support_pages = (
                "/support",
                "/support?stuck=1",
                "/support/environments",
                "/support/audit",
                f"/support/transfers/{demo['transfer']}",
            )
            problems = misfits(page, support_pages)
            assert not problems, "\n".join(problems)
    finally:
        context.close()
