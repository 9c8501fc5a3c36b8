"""A second visitor follows a link to a run that is training: the Train form shows that run's
configuration and keeps it while the live panel refreshes and widgets change, so Launch gives
the same run (in a real browser: the form once drifted to its widgets' defaults, lr 0, epochs 0,
no heads, as soon as the visitor changed a widget)."""

from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from faceml.runs import RunStore

from .conftest import assert_no_exception, wait_idle
from .test_train_flow import launch_small, run_head, select

pytestmark = pytest.mark.browser


def form(page) -> tuple[str, str, str, list[str]]:
    lr = page.get_by_label("Learning rate", exact=True)
    try:  # a throttled browser on a loaded CI machine can take long over one rerun
        lr.wait_for(timeout=90_000)
    except Exception:
        raise AssertionError("no Learning rate field; the page shows: "
                             + page.locator("body").inner_text()[:1500]) from None
    return (lr.input_value(),
            page.get_by_label("Epochs", exact=True).input_value(),
            page.locator('[data-testid="stMultiSelect"]').filter(
                has=page.get_by_text("Predict", exact=True)).first.inner_text(),
            page.locator('[data-testid="stAlertContentError"]').all_inner_texts())


def test_a_link_to_a_training_run_fills_the_form_and_it_holds(browser, app_server):
    a_ctx = browser.new_context()
    a = a_ctx.new_page()
    try:
        run_id = launch_small(a, app_server)
        for wait in (0, 0, 1000, 4500):  # at once, and after refreshes of the live panel
            b_ctx = browser.new_context()
            b = b_ctx.new_page()
            # a slow first paint (a busy machine's browser) while the live panel reruns
            # (4x: at 6x a loaded 2-core CI machine sometimes could not paint the form in 30 s)
            b_ctx.new_cdp_session(b).send("Emulation.setCPUThrottlingRate", {"rate": 4})
            try:
                b.goto(f"{app_server}/train?run={run_id}")
                wait_idle(b)
                run_head(b, run_id).first.wait_for()
                b.wait_for_timeout(wait)
                wait_idle(b)
                lr, epochs, heads, errors = form(b)
                assert (lr, epochs, errors) == ("0.00100", "40", []), (wait, form(b))
                assert "expression" in heads, (wait, form(b))
                select(b, "Architecture", "mlp")
                lr, epochs, heads, errors = form(b)
                assert (lr, epochs, errors) == ("0.00100", "40", []), (wait, form(b))
                assert "expression" in heads, (wait, form(b))
                select(b, "Architecture", "small_cnn")
                assert form(b)[:2] == ("0.00100", "40") and "expression" in form(b)[2], form(b)
                b.get_by_label("Seed", exact=True).fill("7")
                b.get_by_label("Seed", exact=True).press("Enter")
                wait_idle(b)
                lr, epochs, heads, errors = form(b)
                assert (lr, epochs, errors) == ("0.00100", "40", []), (wait, form(b))
                assert "expression" in heads, (wait, form(b))
                b.get_by_label("Seed", exact=True).fill("0")
                b.get_by_label("Seed", exact=True).press("Enter")
                wait_idle(b)
                before = {r.id for r in RunStore(app_server.runs_dir).list()}
                cached = b.get_by_text(f"showing its cached run {run_id}")
                seen = False
                for _ in range(3):  # a click that lands during a fragment's rerun can be lost
                    b.get_by_role("button", name="Launch").click()
                    try:  # caught as it is drawn: a later rerun (run A finishing) redraws the page
                        cached.wait_for(timeout=30_000)
                        seen = True
                        break
                    except PlaywrightTimeout:
                        wait_idle(b)
                wait_idle(b)
                assert_no_exception(b)
                assert parse_qs(urlparse(b.url).query)["run"] == [run_id], wait
                assert seen, wait
                assert {r.id for r in RunStore(app_server.runs_dir).list()} == before  # no new run
            finally:
                b_ctx.close()
        stop = a.get_by_role("button", name="Stop")
        if stop.count():  # still training (else done by now): leave the worker free
            stop.click()
            wait_idle(a)
    finally:
        a_ctx.close()
