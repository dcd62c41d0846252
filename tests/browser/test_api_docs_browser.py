"""The API reference at /api/v1/docs renders in a real browser from the app's own files,
under the site's strict CSP, with every operation of the OpenAPI document listed."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.helpers import screenshot_on_failure


def test_the_api_reference_renders_under_the_csp_from_the_apps_own_files(
    page, live_server, tmp_path
):
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))

    with screenshot_on_failure(page, tmp_path):
        page.goto("/api/v1/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "Overdracht", timeout=10_000
        )
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        paths = page.locator(".opblock-summary-path").all_inner_texts()

    assert any("/api/v1/imports" in p for p in paths)
    assert any("/api/v1/claims/preview" in p for p in paths)
    assert errors == []
    assert all(url.startswith(live_server) for url in requests), "no CDN"


def test_the_account_page_links_to_the_reference(login, office):
    html = login(office.superuser).get_page("/account").get_data(as_text=True)
    assert 'href="/api/v1/docs"' in html
