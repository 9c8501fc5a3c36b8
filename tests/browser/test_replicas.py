"""Two replicas, one run store: two Streamlit servers on two ports share one runs folder (as N
replicas behind a load balancer share one store), and a run launched on one shows live on
the other: its panel there goes from queued/running to done, with its curves, without a
reload."""

import re
import time
from contextlib import ExitStack

import pytest

from .conftest import (assert_no_exception, charts, screenshot, serve_app,
                       wait_idle, wait_rendered)
from .test_train_flow import launch_small, run_head, state_of

pytest.importorskip("playwright.sync_api",
                    reason="playwright is not importable; pip install -r requirements-dev.txt")

pytestmark = pytest.mark.browser

EPOCHS = 20  # long enough that replica B sees the run before it ends (~0.3-1.5 s an epoch)
RUN_TIMEOUT = 150  # s from Launch to done


def _context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    return ctx


def test_run_launched_on_one_replica_shows_live_on_the_other(browser, tmp_path, request):
    store = tmp_path / "shared-runs"  # the one store both replicas name
    t0 = time.monotonic()
    with ExitStack() as stack:
        a = stack.enter_context(serve_app(tmp_path / "a", runs_dir=store))
        b = stack.enter_context(serve_app(tmp_path / "b", runs_dir=store))
        assert a != b and a.runs_dir == b.runs_dir == store
        logs = lambda: f"{a.logs()}\n{b.logs()}"  # noqa: E731
        page_a = stack.enter_context(_context(browser)).new_page()
        page_b = stack.enter_context(_context(browser)).new_page()

        # B's visitor is on the Train page already (Keras imported there too)
        page_b.goto(f"{b}/train")
        wait_idle(page_b)
        run_id = launch_small(page_a, a, epochs=EPOCHS)
        launched = time.monotonic()

        # B was not told: it opens the run by its id, as a link shared between visitors would
        page_b.goto(f"{b}/train?run={run_id}")
        wait_idle(page_b)
        run_head(page_b, run_id).first.wait_for()
        first = state_of(page_b, run_id)
        assert first in ("queued", "running"), \
            f"replica B shows run {run_id} as {first} (raise EPOCHS if 'done')\n{logs()}"
        assert_no_exception(page_b)
        screenshot(page_b, request, f"B-{first}")

        # live on B: its panel refreshes from the shared store until the run is done
        seen = {first}
        while (state := state_of(page_b, run_id)) != "done":
            assert state in ("queued", "running", None), \
                f"run {run_id} ended {state} on replica B\n{logs()}"
            assert time.monotonic() - launched < RUN_TIMEOUT, \
                f"run {run_id} not done on replica B after {RUN_TIMEOUT} s\n{logs()}"
            seen.add(state)
            page_b.wait_for_timeout(250)
        assert parse_run(page_b.url) == run_id, page_b.url  # no reload, same run
        wait_idle(page_b)
        wait_rendered(page_b)
        assert "✅" in run_head(page_b, run_id).first.inner_text()
        assert charts(page_b).count() >= 1, "replica B shows no curves of the finished run"
        assert_no_exception(page_b)
        screenshot(page_b, request, "B-done")

        # and A, which launched it, agrees
        page_a.wait_for_function(
            "id => [...document.querySelectorAll('[data-testid=\"stMarkdown\"]')].some("
            "e => e.innerText.includes(id) && e.innerText.includes('done'))", arg=run_id,
            timeout=30_000)
        assert_no_exception(page_a)
    print(f"\nreplicas: B saw {sorted(seen)} then done; "
          f"{time.monotonic() - t0:.0f} s in all, {time.monotonic() - launched:.0f} s since "
          "launch")


def parse_run(url: str) -> str | None:
    m = re.search(r"[?&]run=(\w+)", url)
    return m.group(1) if m else None
