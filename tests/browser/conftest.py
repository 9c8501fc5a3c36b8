"""Browser fixtures: the real app served by ``streamlit run`` and driven by headless Chromium.

The browser is Debian's ``chromium`` (``scripts/install-browser.sh``), launched by Playwright's
sync API; Playwright's own browser download is never used. Without chromium or playwright the
tests skip with the reason. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
START_TIMEOUT = 90  # s until /_stcore/health answers "ok"
RERUN_TIMEOUT = 90_000  # ms for one Streamlit rerun (the first Train page imports Keras)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().decode().strip() == "ok"
    except (OSError, urllib.error.URLError):
        return False


def _workers_of(runs_dir: Path) -> list[int]:
    """Pids of ``python -m faceml worker`` processes whose FACEML_RUNS_DIR is ``runs_dir``."""
    want = f"FACEML_RUNS_DIR={runs_dir}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            if b"faceml" not in cmd or b"worker" not in cmd:
                continue
            if want in (d / "environ").read_bytes().split(b"\0"):
                pids.append(int(d.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def _kill(pids, timeout: float = 10) -> None:
    pids = set(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    t0 = time.monotonic()
    while pids and time.monotonic() - t0 < timeout:
        for pid in list(pids):
            try:
                os.waitpid(pid, os.WNOHANG)  # reap if it is our child
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except OSError:
                pids.discard(pid)
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class AppServer(str):
    """The base URL (a str), with the server's log and runs dir for failure messages."""

    log: Path
    runs_dir: Path
    pid: int

    def peak_rss_mb(self) -> float:
        """The web process's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def logs(self, n: int = 3000) -> str:
        out = [f"--- {self.log}:\n{self.log.read_text(errors='replace')[-n:]}"]
        wlog = self.runs_dir / "worker.log"
        if wlog.exists():
            out.append(f"--- {wlog}:\n{wlog.read_text(errors='replace')[-n:]}")
        return "\n".join(out)


@contextmanager
def serve_app(base: Path, env: dict | None = None, port: int | None = None,
              runs_dir: Path | None = None):
    """Serve the app headless on a free port (or ``port``) with runs and cache dirs under
    ``base``; ``env`` adds variables (e.g. ``FACEML_HOSTED``). ``runs_dir`` puts the run store
    elsewhere (two servers given the same one are two replicas sharing a store). Yields its
    AppServer. Stops the server, and any training worker it started for that runs dir."""
    runs_dir, cache_dir = Path(runs_dir or base / "runs"), base / "cache"
    port = port or _free_port()
    url = AppServer(f"http://127.0.0.1:{port}")
    extra = env or {}
    env = {k: v for k, v in os.environ.items()
           if k not in ("FACEML_HOSTED", "FACEML_HOSTING_CONFIG")}
    env.update({"FACEML_RUNS_DIR": str(runs_dir), "FACEML_CACHE_DIR": str(cache_dir),
                "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra})
    url.log, url.runs_dir = base / "streamlit.log", runs_dir
    base.mkdir(parents=True, exist_ok=True)
    with open(url.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false",
             # the project config redacts errors; tests want the traceback in the failure
             "--client.showErrorDetails", "full"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url.pid = proc.pid
    try:
        t0 = time.monotonic()
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() - t0 > START_TIMEOUT:
                why = (f"exited with {proc.returncode}" if proc.poll() is not None
                       else f"not healthy after {START_TIMEOUT} s")
                pytest.fail(f"streamlit server {why}\n{url.logs()}", pytrace=False)
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # workers are detached (start_new_session): find them by their runs dir
        _kill(_workers_of(runs_dir))


@contextmanager
def served_run(app_server, monkeypatch, cfg):
    """Train ``cfg`` in-process into the served app's run store; the run is removed afterwards
    so the session's shared store is left as it was (the Evaluate page rewrites its URL to
    ``?run=<id>`` once a run exists, which other tests do not expect)."""
    from faceml.runs import RunStore
    from faceml.training.engine import train_run

    monkeypatch.setenv("FACEML_RUNS_DIR", str(app_server.runs_dir))
    monkeypatch.setenv("FACEML_CACHE_DIR", str(app_server.runs_dir.parent / "cache"))
    run, _ = RunStore(app_server.runs_dir).create(cfg.run_id(), cfg.canonical())
    if run.status().get("state") != "done":
        train_run(run)
    try:
        yield run
    finally:
        shutil.rmtree(run.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """Base URL (an AppServer str) of the app served for the whole session."""
    with serve_app(tmp_path_factory.mktemp("browser_app")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.skip(f"playwright is not importable ({e}); pip install -r requirements-dev.txt")
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("chromium is not installed; run scripts/install-browser.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh browser context (own cookies, own Streamlit session) and page per test."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(30_000)
    pg = ctx.new_page()
    yield pg
    ctx.close()


# ---- helpers ---------------------------------------------------------------------------------

IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && ['notRunning', 'compilationError'].includes(app.getAttribute('data-test-script-state'))
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-testid="stMain"] [data-stale="true"]');
}"""


def wait_idle(page, timeout: int = RERUN_TIMEOUT) -> None:
    """Wait until Streamlit has finished its rerun: connected, the script not running, no
    status widget ("Running…") and no element left stale from the previous run. Checked twice,
    a moment apart, since a widget change starts its rerun a little after the event."""
    for _ in range(2):
        page.wait_for_timeout(250)
        page.wait_for_function(IDLE_JS, timeout=timeout, polling=100)


def wait_rendered(page, timeout: int = 15_000) -> None:
    """After a rerun, let the client finish drawing: skeletons gone, plotly charts drawn."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            """() => !document.querySelector('[data-testid="stMain"] [data-testid="stSkeleton"]')
                && Array.from(document.querySelectorAll(
                       '[data-testid="stMain"] [data-testid="stPlotlyChart"]'))
                     .every(c => c.querySelector('.main-svg'))""", timeout=timeout, polling=200)
    except PlaywrightTimeout:  # a screenshot of a half-drawn page still helps; asserts follow
        return


def charts(page):
    """The plotly charts of the main area that have been drawn."""
    return page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]'
                        ':has(.main-svg)')


def screenshot(page, request, name: str = "") -> Path:
    """Whole-page screenshot, test-artifacts/<test>[-<name>].png. Streamlit scrolls inside
    stMain, so the viewport is made as tall as its content for the shot and then restored."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = f"{request.node.name}-{name}" if name else request.node.name
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") + ".png")
    vp = page.viewport_size
    h = page.evaluate("""() => {
        const m = document.querySelector('[data-testid="stMain"]');
        return m ? m.scrollHeight : document.documentElement.scrollHeight; }""")
    if vp and h > vp["height"]:
        page.set_viewport_size({"width": vp["width"], "height": min(int(h) + 40, 6000)})
        page.wait_for_timeout(400)  # plotly relayouts on resize
    try:
        page.screenshot(path=str(path))
    finally:
        if vp and h > vp["height"]:
            page.set_viewport_size(vp)
    return path


@pytest.fixture
def shot(page, request):
    """``shot("name")`` saves a screenshot of ``page`` named after the test."""
    return lambda name="": screenshot(page, request, name)


def open_box(page, box, tries: int = 3):
    """Open a selectbox's list (a click may only focus it; the arrow key opens it).

    A slow browser (CI's, or one throttled on purpose) can still be redrawing the page when
    the click comes, so Playwright never sees the box stable; the click is tried again once
    the page is idle, and the last failure says what the box looked like."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    options = page.get_by_role("option")
    for attempt in range(tries):
        try:
            box.click(timeout=10_000)
            break
        except PlaywrightTimeout:
            if attempt == tries - 1:
                # a page that never holds still long enough for a click (a throttled browser
                # redrawing a live panel): focus the box's input and open it from the keyboard,
                # as a keyboard user would
                box.locator("input").focus()
                page.keyboard.press("ArrowDown")
                try:
                    options.first.wait_for(timeout=10_000)
                    return options
                except PlaywrightTimeout:
                    raise AssertionError(
                        f"selectbox never clickable: {box.evaluate('e => e.outerHTML')[:600]}"
                    ) from None
            wait_idle(page)
    try:
        options.first.wait_for(timeout=1500)
    except PlaywrightTimeout:  # only focused: open it from the keyboard
        page.keyboard.press("ArrowDown")
        options.first.wait_for()
    return options


def exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def assert_no_exception(page) -> None:
    ex = exceptions(page)
    assert not ex, "Streamlit exception shown:\n" + "\n---\n".join(ex)


@pytest.fixture(scope="session")
def hosted_server(tmp_path_factory):
    """The app as a hosted demo (``FACEML_HOSTED=1``): the operator allows synthetic and one
    small UTKFace folder; a private folder sits beside it on the same disk."""
    from tests.fixtures_formats import make_folder, make_utkface

    base = tmp_path_factory.mktemp("hosted_app")
    utk = make_utkface(base / "srv" / "utkface", n=40)
    make_folder(base / "private" / "celebs", n=4)
    cfg = base / "hosting.toml"
    cfg.write_text(f'[datasets]\nsynthetic = ""\nutkface = "{utk}"\n\n'
                   "[caps]\nepochs = 40\nfaces = 1000\nparams = 2000000\n")
    with serve_app(base, env={"FACEML_HOSTED": "1", "FACEML_HOSTING_CONFIG": str(cfg),
                              "FACEML_SHARED_DATA": str(base / "empty")}) as url:
        url.private = base / "private"
        yield url
