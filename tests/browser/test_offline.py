"""Nothing is fetched from another host: every page of the app (and the Evaluate page of a
finished run, every tab of every head) asks only the app's own server, and the exported HTML
report draws all its figures with the network cut off."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from .conftest import assert_no_exception, open_box, served_run, wait_idle, wait_rendered

pytestmark = pytest.mark.browser

NAV_LINKS = '[data-testid="stSidebarNav"] a'
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
LOCAL_SCHEMES = ("data", "blob", "about", "file")


def foreign(urls: list[str]) -> list[str]:
    """The URLs that go to another host (anything but this machine, data:, blob:)."""
    out = []
    for u in urls:
        p = urlparse(u)
        if p.scheme in LOCAL_SCHEMES:
            continue
        if p.scheme in ("http", "https", "ws", "wss") and p.hostname in LOCAL_HOSTS:
            continue
        out.append(u)
    return sorted(set(out))


def record(page) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    return urls


def test_foreign_finds_other_hosts():
    assert foreign(["http://127.0.0.1:8501/_stcore/health", "ws://localhost:1/_stcore/stream",
                    "data:image/svg+xml,<svg/>", "blob:http://127.0.0.1:1/x"]) == []
    assert foreign(["https://fonts.gstatic.com/s/i/face/24px.svg",
                    "http://127.0.0.1.example.com/x"]) == [
        "http://127.0.0.1.example.com/x", "https://fonts.gstatic.com/s/i/face/24px.svg"]


def test_no_page_requests_another_host(page, app_server):
    urls = record(page)
    page.goto(app_server)
    wait_idle(page)
    links = page.locator(NAV_LINKS)
    n = links.count()
    assert n >= 6, f"expected the six pages in the navigation, found {n}"
    for i in range(n):
        href = links.nth(i).get_attribute("href")
        links.nth(i).click()
        page.wait_for_url(lambda u: urlparse(u).path == urlparse(href).path)
        wait_idle(page)
        wait_rendered(page)
        assert_no_exception(page)
    for i in range(n):  # each page also as the first one a browser opens (its favicon, fonts)
        page.goto(app_server + urlparse(links.nth(i).get_attribute("href")).path)
        wait_idle(page)
        wait_rendered(page)
    page.wait_for_timeout(500)
    assert any(urlparse(u).path.endswith("/_stcore/health") or "/static/" in u for u in urls)
    assert not foreign(urls), f"requests to other hosts: {foreign(urls)}"


@pytest.fixture
def finished_run(app_server, monkeypatch):
    from faceml.data.prepare import PrepOptions
    from faceml.config import TrainConfig

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 240}, size=16,
                                       color="gray"),
                      arch="small_cnn", heads=["expression", "eyewear", "age"], epochs=1,
                      batch_size=32)
    with served_run(app_server, monkeypatch, cfg) as run:
        yield run


def test_the_evaluate_page_of_a_finished_run_requests_no_other_host(page, app_server,
                                                                     finished_run):
    urls = record(page)
    page.goto(f"{app_server}/evaluate?run={finished_run.id}")
    wait_idle(page)
    assert_no_exception(page)
    seen = 0
    for head in ("expression", "eyewear", "age"):  # multiclass, binary (threshold), regression
        box = page.get_by_role("combobox", name="Head")
        box.click()
        page.get_by_role("option", name=head, exact=True).click()
        wait_idle(page)
        tabs = page.get_by_role("tab")
        for i in range(tabs.count()):
            tabs.nth(i).click()
            wait_idle(page)
            wait_rendered(page)
            seen += 1
        assert_no_exception(page)
    assert seen >= 6 + 6 + 4
    page.wait_for_timeout(500)
    assert page.locator('[data-testid="stPlotlyChart"] .main-svg').count() > 0
    assert not foreign(urls), f"requests to other hosts: {foreign(urls)}"


def test_the_html_report_draws_every_figure_offline(browser, tmp_path):
    from tests.test_report_offline import sample_interp

    from faceml.evaluation.report import report_html

    path = tmp_path / "report.html"
    path.write_text(report_html(sample_interp(), title="offline"), encoding="utf-8")
    ctx = browser.new_context(offline=True)
    try:
        pg = ctx.new_page()
        urls = record(pg)
        pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                 else route.abort())
        pg.goto(path.as_uri())
        # five figures, each drawn: its axes' ticks and its data (a heatmap is an image)
        pg.wait_for_function("""() => {
            const plots = [...document.querySelectorAll('.js-plotly-plot')];
            return plots.length === 5 && plots.every(d => d.querySelector('.xtick')
                && d.querySelectorAll('.trace, .heatmaplayer image').length > 0);
        }""", timeout=30_000)
        assert not foreign(urls), f"the report asked other hosts: {foreign(urls)}"
    finally:
        ctx.close()


def test_hosted_evaluate_page_offers_no_path_and_asks_no_other_host(browser, hosted_server,
                                                                   monkeypatch):
    """The hosted demo in a real browser: the cross-dataset panel lists the operator's datasets
    only, with no box to type a path into, and nothing is fetched from another host."""
    from faceml.data.prepare import PrepOptions
    from faceml.config import TrainConfig

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 240}, size=16,
                                       color="gray"),
                      arch="small_cnn", heads=["expression"], epochs=1, batch_size=32)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(30_000)
    try:
        with served_run(hosted_server, monkeypatch, cfg) as run:
            page = ctx.new_page()
            urls = record(page)
            page.goto(f"{hosted_server}/evaluate?run={run.id}")
            wait_idle(page)
            assert_no_exception(page)
            page.get_by_text("Cross-dataset evaluation").click()
            box = page.get_by_role("combobox", name="Dataset")
            options = [o.strip() for o in open_box(page, box).all_inner_texts()]
            assert options == ["synthetic", "utkface"], options
            for name in options:
                if box.input_value() != name:
                    box.click()
                    page.get_by_role("option", name=name, exact=True).click()
                    wait_idle(page)
                assert page.locator('[data-testid="stTextInput"]').count() == 0, name
                assert page.get_by_role("textbox", name="Path").count() == 0, name
            page.keyboard.press("Escape")
            main = page.locator('[data-testid="stMain"]').inner_text()
            assert str(hosted_server.private) not in main and "/srv/" not in main
            assert not foreign(urls), f"requests to other hosts: {foreign(urls)}"
    finally:
        ctx.close()
