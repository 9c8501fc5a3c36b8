"""The web server is killed and restarted while a run trains: the run trains on (its worker is
a detached process), and the open page reattaches by itself to the restarted server, showing
the run live with the form holding its configuration. Then Stop and Resume from that page:
the panel follows the resumed run instead of freezing on "stopped"."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from faceml.runs import RunStore, pid_alive

from .conftest import (ROOT, START_TIMEOUT, AppServer, _free_port, _healthy, _kill, _workers_of,
                       assert_no_exception, charts, screenshot, wait_idle)
from .test_train_flow import number, run_head, select, state_of

expect = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser

# Long enough that it trains through the restart and the Stop/Resume after it; the test stops
# it at the end (an epoch of small_cnn on 700 faces of 32x32 px takes ~0.4-1.5 s here).
FACES, SIZE, ARCH, EPOCHS = 1000, "32", "small_cnn", 300
TIMEOUT = 180  # s for each wait below
RECONNECT = 120_000  # ms for the page to find the restarted server (the client backs off)
EPOCH = re.compile(r"epoch (\d+)/(\d+)")


@contextmanager
def restartable_app(base: Path):
    """Like conftest.serve_app, on a port that stays the same across ``kill()`` (SIGKILL, like
    a crash) and ``start()``, so an open page can reconnect. Stops the server and the training
    workers of its runs dir at the end."""
    runs_dir, cache_dir = base / "runs", base / "cache"
    url = AppServer(f"http://127.0.0.1:{_free_port()}")
    url.log, url.runs_dir = base / "streamlit.log", runs_dir
    env = {k: v for k, v in os.environ.items()
           if k not in ("FACEML_HOSTED", "FACEML_HOSTING_CONFIG")}
    env.update({"FACEML_RUNS_DIR": str(runs_dir), "FACEML_CACHE_DIR": str(cache_dir),
                "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
    procs: list[subprocess.Popen] = []

    def start() -> None:
        with open(url.log, "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
                 "--server.headless", "true", "--server.port", url.rsplit(":", 1)[1],
                 "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
                 "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "full"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT))
        t0 = time.monotonic()
        while not _healthy(url):
            if procs[-1].poll() is not None or time.monotonic() - t0 > START_TIMEOUT:
                pytest.fail(f"streamlit server did not start\n{url.logs()}", pytrace=False)
            time.sleep(0.25)

    def kill() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(10)

    url.start, url.kill = start, kill
    try:
        start()
        yield url
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        _kill(_workers_of(runs_dir))


@pytest.fixture
def app(tmp_path):
    with restartable_app(tmp_path) as url:
        yield url


@pytest.fixture
def page(browser, app):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(30_000)
    pg = ctx.new_page()
    yield pg
    ctx.close()


def until(pred, what: str, app, timeout: float = TIMEOUT, page=None):
    t0 = time.monotonic()
    while not (got := pred()):
        assert time.monotonic() - t0 < timeout, f"{what}: not after {timeout} s\n{app.logs()}"
        if page is not None:
            page.wait_for_timeout(250)
        else:
            time.sleep(0.25)
    return got


def shown_epoch(page) -> int | None:
    bar = page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    if not bar.count():
        return None
    m = EPOCH.search(bar.first.inner_text())
    return int(m.group(1)) if m else None


def test_server_restart_while_training_then_stop_and_resume(page, app, request):
    page.goto(f"{app}/train")
    wait_idle(page)
    select(page, "Architecture", ARCH)
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Data").first.click()
    number(page, "Faces", FACES)
    select(page, "Image size", SIZE)
    number(page, "Epochs", EPOCHS)
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(r"[?&]run=\w+"))
    run_id = parse_qs(urlparse(page.url).query)["run"][0]
    run = RunStore(app.runs_dir).get(run_id)
    until(lambda: state_of(page, run_id) == "running" and charts(page).count(),
          "running with a curve", app, page=page)
    screenshot(page, request, "1-running")

    # the web server dies: the worker is its own process and trains on
    worker = run.status()["pid"]
    done_before = len(run.history())
    app.kill()
    assert pid_alive(worker), "the worker died with the web server"
    until(lambda: len(run.history()) >= done_before + 2, "epochs while the server is down", app)
    assert run.status()["state"] == "running" and run.status()["pid"] == worker

    # a new server on the same port: the open page reconnects by itself (a new session)
    app.start()
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
                 ?.getAttribute('data-test-connection-state') === 'CONNECTED'""",
        timeout=RECONNECT, polling=250)
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query).get("run") == [run_id], page.url
    run_head(page, run_id).first.wait_for()
    assert state_of(page, run_id) == "running", app.logs()
    assert_no_exception(page)
    # the form holds the run's configuration, not the defaults
    expect(page.get_by_label("Epochs", exact=True)).to_have_value(str(EPOCHS))
    expect(page.get_by_role("combobox", name="Architecture")).to_have_value(ARCH)
    # and the panel is live in the new session: the epoch it shows moves on
    first = until(lambda: shown_epoch(page), "an epoch shown", app, page=page)
    until(lambda: (shown_epoch(page) or 0) > first, "the panel moving on", app, page=page)
    assert run.status()["pid"] == worker, "the same worker, not a restarted run"
    screenshot(page, request, "2-reattached")

    # Stop, then Resume from this page: the panel follows the resumed run
    page.get_by_role("button", name="Stop").click()
    until(lambda: state_of(page, run_id) == "stopped", "stopped", app, page=page)
    stopped_at = len(run.history())
    wait_idle(page)
    page.get_by_role("button", name="Resume").click()
    until(lambda: state_of(page, run_id) in ("queued", "running"), "resumed in the panel", app,
          page=page)
    until(lambda: (shown_epoch(page) or 0) > stopped_at + 1, "the resumed run, live", app,
          page=page)
    rows = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]')
    assert rows.count(), "the runs table is drawn"
    screenshot(page, request, "3-resumed-live")
    assert_no_exception(page)
    page.get_by_role("button", name="Stop").click()
    until(lambda: state_of(page, run_id) == "stopped", "stopped again", app, page=page)
    hist = run.history()["epoch"].tolist()
    assert hist == list(range(1, len(hist) + 1)) and len(hist) > stopped_at
