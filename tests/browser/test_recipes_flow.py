"""Recipes flow in a real browser: open /recipes, pick a FairFace recipe, point it at a tiny
FairFace copy in the real format with 1 epoch, Launch, wait for the run to finish: the
comparison's "ours" fills with the run's own validation accuracy, linked to Evaluate."""

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.fixtures_formats import make_fairface
from faceml.training import recipes

from .conftest import assert_no_exception, screenshot, wait_idle

pytest.importorskip("playwright.sync_api",
                    reason="playwright is not importable; pip install -r requirements-dev.txt")

pytestmark = pytest.mark.browser

RECIPE = "fairface-small-cnn-gender"
RUN_TIMEOUT = 240  # s from Launch to done (worker start, decode, one epoch)


def recipe_box(page):
    return page.locator('[data-testid="stExpander"]').filter(has_text=RECIPE)


def test_pick_launch_and_ours_fills(page, app_server, request, tmp_path):
    root = make_fairface(tmp_path / "ff", n=40, n_val=12, size=32)
    page.goto(f"{app_server}/recipes")
    wait_idle(page)
    assert_no_exception(page)
    field = page.get_by_label("fairface location", exact=True)
    field.fill(str(root))
    field.press("Enter")
    wait_idle(page)
    epochs = page.get_by_label("Epochs (0 = recipe's)", exact=True).first  # FairFace: first tab
    epochs.fill("1")
    epochs.press("Enter")
    wait_idle(page)
    box = recipe_box(page)
    box.locator("summary").click()
    run_id = recipes.get(RECIPE).config(path=str(root), epochs=1).run_id()
    for _ in range(3):  # the click's rerun may start after wait_idle has returned: wait for it
        box.get_by_role("button", name="Launch").click()
        wait_idle(page)
        try:
            expect(box).to_contain_text(run_id, timeout=15_000)
            break
        except AssertionError:
            assert_no_exception(page)
    assert_no_exception(page)
    assert run_id in box.inner_text()
    metrics = app_server.runs_dir / run_id / "metrics.json"
    t0 = time.monotonic()
    while not metrics.exists():
        assert time.monotonic() - t0 < RUN_TIMEOUT, f"run not done\n{app_server.logs()}"
        time.sleep(1)
    accuracy = json.loads(metrics.read_text())["val"]["heads"]["gender"]["accuracy"]
    # the open page follows the run: "ours" fills without a reload
    expect(box).to_contain_text(f"ours: val gender accuracy {accuracy:.3f}", timeout=30_000)
    assert_no_exception(page)
    page.reload()  # a new session: the table reads the store again
    wait_idle(page)
    box = recipe_box(page)
    box.locator("summary").click()
    line = box.locator('[data-testid="stMarkdown"]').filter(has_text=f"Evaluate run {run_id}")
    text = line.inner_text()
    screenshot(page, request, "done")
    assert re.search(rf"ours: val gender accuracy {accuracy:.3f}", text), text
    assert "overrides: path" in text and "epochs 1" in text
    href = line.get_by_role("link").get_attribute("href")
    assert href.endswith(f"/evaluate?run={run_id}")
