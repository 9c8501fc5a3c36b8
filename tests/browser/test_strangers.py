"""Two strangers on a hosted copy (``FACEML_HOSTED=1``), each in its own browser context: no
path input anywhere (every expander open, every dataset tried), B cannot stop A's run, a huge
``custom`` model is refused with a message, and the web process's memory stays bounded."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.test_hosting import HUGE

from .conftest import RERUN_TIMEOUT, assert_no_exception, open_box, wait_idle
from .test_train_flow import launch_small, run_head, select, state_of

expect = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser

PAGES = ["", "train", "evaluate", "compare", "vae", "predict"]


@pytest.fixture
def two(browser, hosted_server):
    """Pages of two visitors A and B: separate contexts, so separate sessions and cookies."""
    ctxs = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    pages = []
    for c in ctxs:
        c.set_default_timeout(30_000)
        c.set_default_navigation_timeout(RERUN_TIMEOUT)  # the server trains A's run meanwhile
        pages.append(c.new_page())
    yield pages
    for c in ctxs:
        c.close()


def path_boxes(page) -> list[str]:
    """Labels of every text box that looks like it takes a path."""
    labels = page.locator('[data-testid="stTextInput"] [data-testid="stWidgetLabel"], '
                          '[data-testid="stTextArea"] [data-testid="stWidgetLabel"]')
    return [t for t in labels.all_inner_texts()
            if re.search(r"path|folder|file|directory", t, re.I)]


def open_expanders(page) -> None:
    closed = page.locator('[data-testid="stExpander"] details:not([open]) > summary')
    for _ in range(20):  # opening one may rerun the page and draw others
        if not closed.count():
            return
        closed.first.click()
        wait_idle(page)


def test_no_path_input_anywhere(two, hosted_server):
    page = two[0]
    for name in PAGES:
        page.goto(f"{hosted_server}/{name}")
        wait_idle(page)
        open_expanders(page)
        assert_no_exception(page)
        assert not path_boxes(page), (name, path_boxes(page))
        box = page.locator('[data-testid="stSelectbox"]').filter(
            has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(r"^Dataset$")))
        if not box.count():
            continue
        options = open_box(page, box.first).all_inner_texts()
        page.keyboard.press("Escape")
        assert [o.split(" — ")[0] for o in options] == ["synthetic", "utkface"], options
        for o in options:
            open_box(page, box.first).filter(has_text=o).first.click()
            wait_idle(page)
            open_expanders(page)
            assert_no_exception(page)
            assert not path_boxes(page), (name, o, path_boxes(page))
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert str(hosted_server.private) not in text and "/srv/" not in text


def test_b_cannot_stop_a_run_and_a_huge_model_is_refused(two, hosted_server):
    a, b = two
    run_id = launch_small(a, hosted_server)
    run_head(a, run_id).first.wait_for()
    expect(a.get_by_role("button", name="Stop")).to_be_visible()

    # B follows A's link: sees the run, but has no Stop, and is told why
    b.goto(f"{hosted_server}/train?run={run_id}")
    wait_idle(b)
    run_head(b, run_id).first.wait_for()
    assert_no_exception(b)
    assert b.get_by_role("button", name="Stop").count() == 0
    expect(b.get_by_text("Launched by another visitor")).to_be_visible()

    # B's huge custom model (from a fresh Train page): a message before anything is built
    rss_before = hosted_server.peak_rss_mb()
    b.goto(f"{hosted_server}/train")
    wait_idle(b)
    select(b, "Architecture", "custom")
    area = b.get_by_label("Builder parameters (JSON)")
    area.fill(json.dumps(HUGE))
    area.press("Control+Enter")
    wait_idle(b)
    assert_no_exception(b)
    expect(b.get_by_text(re.compile(r"this server trains models of at most 2,000,000"))
           ).to_be_visible()
    assert b.get_by_role("button", name="Launch").is_disabled()

    # A's run trains on, untouched by B; A stops it
    assert state_of(a, run_id) in ("queued", "running")
    a.get_by_role("button", name="Stop").click()
    deadline = time.monotonic() + 120
    while state_of(a, run_id) != "stopped":
        assert time.monotonic() < deadline, hosted_server.logs()
        a.wait_for_timeout(500)
    rss_after = hosted_server.peak_rss_mb()
    print(f"\nhosted web process peak RSS: {rss_before:.0f} MB before the huge model, "
          f"{rss_after:.0f} MB after the stranger flow")
    assert rss_after - rss_before < 300, (rss_before, rss_after)
