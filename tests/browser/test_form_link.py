"""A second visitor follows a link to a run that is training: the Train form shows that run's
configuration and keeps it while the live panel refreshes and widgets change, so Launch gives
the same run (in a real browser: the live panel's fragment reruns once reset the form)."""

import re
from urllib.parse import parse_qs, urlparse

import pytest

from faceml.runs import RunStore

from .conftest import assert_no_exception, wait_idle
from .test_train_flow import number, run_head, select

pytestmark = pytest.mark.browser


@pytest.mark.xfail(reason="known bug (issue 15, item 8): in a real browser, while the run trains, "
                   "the live panel's 2-second fragment reruns can leave the freshly filled form "
                   "at its widgets' defaults (lr 0, epochs 0, no heads); AppTest does not show "
                   "it", strict=False)

def form(page) -> tuple[str, str, str, list[str]]:
    return (page.get_by_label("Learning rate", exact=True).input_value(),
            page.get_by_label("Epochs", exact=True).input_value(),
            page.locator('[data-testid="stMultiSelect"]').first.inner_text(),
            page.locator('[data-testid="stAlertContentError"]').all_inner_texts())


def test_a_link_to_a_training_run_fills_the_form_and_it_holds(browser, app_server):
    a_ctx, b_ctx = browser.new_context(), browser.new_context()
    a, b = a_ctx.new_page(), b_ctx.new_page()
    try:
        a.goto(f"{app_server}/train")
        wait_idle(a)
        select(a, "Architecture", "small_cnn")
        a.locator('[data-testid="stExpander"] summary').filter(has_text="Data").first.click()
        number(a, "Faces", 400)
        select(a, "Image size", "32")
        number(a, "Epochs", 40)
        a.get_by_role("button", name="Launch").click()
        a.wait_for_url(re.compile(r"[?&]run=\w+"))
        run_id = parse_qs(urlparse(a.url).query)["run"][0]

        b.goto(f"{app_server}/train?run={run_id}")
        wait_idle(b)
        run_head(b, run_id).first.wait_for()
        b.wait_for_timeout(4500)  # two refreshes of the live panel
        wait_idle(b)
        lr, epochs, heads, errors = form(b)
        assert (lr, epochs, errors) == ("0.00100", "40", []), form(b)
        assert "expression" in heads
        select(b, "Architecture", "mlp")
        assert form(b)[0:2] == ("0.00100", "40") and not form(b)[3], form(b)
        select(b, "Architecture", "small_cnn")
        before = {r.id for r in RunStore(app_server.runs_dir).list()}
        b.get_by_role("button", name="Launch").click()
        wait_idle(b)
        assert_no_exception(b)
        assert parse_qs(urlparse(b.url).query)["run"] == [run_id]
        assert {r.id for r in RunStore(app_server.runs_dir).list()} == before  # no new run
        a.get_by_role("button", name="Stop").click()
        wait_idle(a)
    finally:
        a_ctx.close()
        b_ctx.close()
