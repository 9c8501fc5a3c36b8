"""Train flow in a real browser: pick synthetic -> launch -> see curves -> reload -> the same run,
still running (or done), and the form holds its configuration -> done, with its curves and the
checkpoint its metrics come from."""

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import (assert_no_exception, charts, open_box, screenshot, wait_idle,
                       wait_rendered)

expect = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser

# Small enough to keep the test short, long enough that the run is still training when its
# first curves show (the panel refreshes every 2 s): the worker needs 4-10 s to start, then a
# small_cnn epoch on 700 training faces of 32x32 px takes ~0.4 s (quiet) to ~1.5 s (2 busy
# cores), so 15 epochs after the first leave a few seconds even on a fast machine.
FACES, SIZE, ARCH, EPOCHS = 1000, "32", "small_cnn", 16
RUN_TIMEOUT = 180_000  # ms from Launch to done
STATE = re.compile(r"\b(queued|running|done|failed|stopped|damaged)\b")


def select(page, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(rf"^{label}$")))
    open_box(page, box)
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def number(page, label: str, value: int) -> None:
    """Type ``value`` into the Streamlit number input labelled ``label``."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    wait_idle(page)
    assert field.input_value() == str(value), f"{label} did not take {value}"


def launch_small(page, url: str, epochs: int = 40) -> str:
    """Launch a small run (small_cnn, 400 synthetic faces at 32 px) from a fresh Train page;
    returns its id once the page shows it in its URL."""
    page.goto(f"{url}/train")
    wait_idle(page)
    select(page, "Architecture", "small_cnn")
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Data").first.click()
    number(page, "Faces", 400)
    select(page, "Image size", "32")
    number(page, "Epochs", epochs)
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(r"[?&]run=\w+"))
    return parse_qs(urlparse(page.url).query)["run"][0]


def run_head(page, run_id: str):
    """The run panel's headline: '<icon> Run `<id>` — <state> · …'."""
    return page.locator('[data-testid="stMarkdown"]').filter(
        has_text=re.compile(rf"Run\s+{run_id}\b"))


def state_of(page, run_id: str) -> str | None:
    head = run_head(page, run_id)
    if not head.count():
        return None
    m = STATE.search(head.first.inner_text())
    return m.group(1) if m else None


def test_launch_watch_reload_done(page, app_server, request):
    t = {"t0": time.monotonic()}

    def mark(name):
        t[name] = round(time.monotonic() - t["t0"], 1)

    page.goto(f"{app_server}/train")
    wait_idle(page)
    assert_no_exception(page)
    # every change rebuilds the layer table of the config: pick the small model first
    select(page, "Architecture", ARCH)
    # synthetic is the default dataset; make it small through the Data expander
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Data").first.click()
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value(re.compile(r"^synthetic"))
    number(page, "Faces", FACES)
    select(page, "Image size", SIZE)
    number(page, "Epochs", EPOCHS)
    assert_no_exception(page)
    assert not page.locator('[data-testid="stAlertContentError"]').count(), \
        page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    screenshot(page, request, "1-configured")
    mark("configured")

    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(r"[?&]run=\w+"))
    run_id = parse_qs(urlparse(page.url).query)["run"][0]
    head = run_head(page, run_id)
    head.first.wait_for()
    mark("launched")

    # live panel: running, with at least one curve drawn
    deadline = time.monotonic() + RUN_TIMEOUT / 1000
    while True:
        state = state_of(page, run_id)
        if state == "running" and charts(page).count():
            break
        assert state in (None, "queued", "running"), \
            (f"run {run_id} is {state} before a curve was seen while running "
             f"(raise EPOCHS if it is 'done')\n{app_server.logs()}")
        assert time.monotonic() < deadline, f"no curve after {RUN_TIMEOUT} ms\n{app_server.logs()}"
        page.wait_for_timeout(250)
    mark("curves")
    assert_no_exception(page)
    screenshot(page, request, "2-running-with-curves")

    # reload: a new session; the run id in the URL brings the same run back
    page.reload()
    wait_idle(page)
    mark("reloaded")
    assert parse_qs(urlparse(page.url).query).get("run") == [run_id], page.url
    head.first.wait_for()
    after_reload = state_of(page, run_id)
    assert after_reload in ("running", "done"), \
        f"after reload the run is {after_reload}\n{app_server.logs()}"
    assert_no_exception(page)
    # the form is the run's configuration, not the defaults: Launch would show this run
    expect(page.get_by_role("combobox", name="Architecture")).to_have_value(ARCH)
    expect(page.get_by_label("Epochs", exact=True)).to_have_value(str(EPOCHS))
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Data").first.click()
    expect(page.get_by_label("Faces", exact=True)).to_have_value(str(FACES))
    expect(page.get_by_role("combobox", name="Image size")).to_have_value(SIZE)
    assert not page.get_by_text("Launch also keeps").count()
    screenshot(page, request, f"3-after-reload-{after_reload}")

    # done, with its curves
    while (state := state_of(page, run_id)) != "done":
        assert state in ("running", None), f"run {run_id} ended {state}\n{app_server.logs()}"
        assert time.monotonic() < deadline, f"not done after {RUN_TIMEOUT} ms\n{app_server.logs()}"
        page.wait_for_timeout(250)
    mark("done")
    assert "✅" in head.first.inner_text()
    wait_idle(page)
    wait_rendered(page)
    assert charts(page).count() >= 1
    expect(page.get_by_text(re.compile(r"Metrics of the best checkpoint \(epoch \d+ of "
                                       rf"{EPOCHS}\)"))).to_be_visible()
    assert_no_exception(page)
    screenshot(page, request, "4-done")
    print(f"\ntrain flow timings (s since start): {t}, state after reload: {after_reload}")

    # a new launch while the finished run is shown: the old run's curves go as soon as the
    # new run's panel is drawn (they used to stay, greyed, until the whole page had rerun)
    old_curves = page.locator(
        f'[data-testid="stMain"] [class*="st-key-curve_"][class*="_{run_id}"]')
    number(page, "Epochs", 2)
    page.get_by_role("button", name="Launch").click()
    new_head = page.locator('[data-testid="stMarkdown"]').filter(
        has_text=re.compile(r"Run\s+\w+\s+— (queued|running)"))
    new_head.first.wait_for(timeout=60_000)
    # (its panel's first line comes a moment before its row of curves)
    expect(old_curves).to_have_count(0, timeout=500)
    wait_idle(page)
    assert_no_exception(page)
