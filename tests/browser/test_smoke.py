"""Every page in the sidebar navigation opens in a real browser without an exception."""

from urllib.parse import urlparse

import pytest

from .conftest import exceptions, screenshot, serve_app, wait_idle, wait_rendered

pytestmark = pytest.mark.browser

NAV_LINKS = '[data-testid="stSidebarNav"] a'


def nav_labels(page) -> list[str]:
    """The sidebar navigation's page names (each link's text is '<icon name>\\n\\n<title>')."""
    return [t.strip().splitlines()[-1].strip() for t in page.locator(NAV_LINKS).all_inner_texts()]


def test_every_navigation_page_opens(page, app_server, request):
    page.goto(app_server)
    wait_idle(page)
    links = page.locator(NAV_LINKS)
    labels = nav_labels(page)
    assert len(labels) >= 2, f"expected at least 2 pages in the sidebar navigation, got {labels}"
    problems = []
    for i, label in enumerate(labels):
        link = links.nth(i)
        href = link.get_attribute("href")
        link.click()
        page.wait_for_url(lambda u: urlparse(u).path == urlparse(href).path)  # may add ?run=
        wait_idle(page)
        wait_rendered(page)
        screenshot(page, request, f"{i}-{label}")
        if link.get_attribute("aria-current") != "page":
            problems.append(f"{label}: its nav link is not marked current after the click")
        ex = exceptions(page)
        if ex:
            problems.append(f"{label}: exception shown:\n" + "\n---\n".join(ex))
        title = page.locator('[data-testid="stMain"] h1').first
        if not title.count() or not title.is_visible():
            problems.append(f"{label}: no page title (h1) visible")
    assert not problems, "\n".join(problems) + "\n" + app_server.logs()


def test_deep_link_on_a_fresh_server_shows_the_app_navigation(page, app_server, tmp_path, request):
    page.goto(app_server)
    wait_idle(page)
    labels = nav_labels(page)
    path = urlparse(page.locator(NAV_LINKS).nth(1).get_attribute("href")).path
    with serve_app(tmp_path) as fresh:
        page.goto(fresh + path)  # the first request this server sees
        # the navigation is sent before the page's own script runs: no need to wait for it all
        page.locator(NAV_LINKS).first.wait_for()
        page.wait_for_timeout(500)
        screenshot(page, request, "fresh-server")
        assert nav_labels(page) == labels, f"{path} on a fresh server\n{fresh.logs()}"
