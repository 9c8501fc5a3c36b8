"""Benchmark: click on a confusion-matrix cell -> that cell's faces shown, in a real browser.

    python -m bench.evaluate_browser [--n 5000] [--rounds 2]

Run it from the project's root as a module (it uses the browser tests' server helpers).
Builds the run of ``bench.evaluate`` (``--n`` stored test predictions of the built-in synthetic
faces, so the galleries draw real images), serves the app headless (``streamlit run``) and
opens ``/evaluate?run=<id>`` in Playwright-driven Chromium (Debian's ``chromium``). On the
Confusion matrix tab of the first head (eyewear, 2 x 2) it clicks every cell in turn,
``--rounds`` times over, each click a cell other than the one shown, and times from the mouse
click until the headline names that cell and all its gallery faces (captions
``true X -> pred Y``, images decoded) are drawn.

Measured in this process, twice on the same run and browser:
  click_ms            median click -> faces with the app as shipped (the matrix is a fragment:
                      a click reruns the matrix and its faces only); click_max_ms the slowest;
  full_rerun_click_ms the baseline: the same clicks with ``FACEML_UI_FRAGMENTS=0`` (no
                      fragments, so every click reruns the whole page, as before);
                      full_rerun_click_max_ms the slowest.
The first click of each server is left out of the medians (first PNG encoding of its faces is
counted in the max). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests.browser.conftest import CHROMIUM_ARGS, serve_app, wait_idle, wait_rendered

GALLERY_MAX = 18  # ui.evaluate.PER_PAGE

SHOWN_JS = """([t, p, n]) => {
    const main = document.querySelector('[data-testid="stMain"]');
    if (!main) return false;
    const head = Array.from(main.querySelectorAll('[data-testid="stMarkdown"]'))
        .some(m => m.innerText.includes(`faces with true ${t} predicted ${p}`)
                   && !m.closest('[data-stale="true"]'));
    if (!head) return false;
    const panel = Array.from(main.querySelectorAll('[data-testid="stTabPanel"]'))
        .find(e => e.offsetParent !== null);
    if (!panel) return false;
    const want = `true ${t} \u2192 pred ${p}`;
    const caps = Array.from(panel.querySelectorAll('[data-testid="stImageCaption"]'))
        .filter(c => c.innerText.includes(want) && !c.closest('[data-stale="true"]'));
    if (caps.length !== n) return false;
    const imgs = Array.from(panel.querySelectorAll('[data-testid="stImage"] img'));
    return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def clicks(url: str, run_id: str, counts: dict, classes: list[str], rounds: int) -> list[float]:
    """Seconds from each cell click to its faces, in one fresh browser session."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/evaluate?run={run_id}")
        wait_idle(page)
        page.get_by_role("tab", name="Confusion matrix").click()
        wait_rendered(page)
        t_sel = page.get_by_role("combobox", name="True class").first
        p_sel = page.get_by_role("combobox", name="Predicted class").first
        current = (t_sel.input_value(), p_sel.input_value())
        cells = [(t, q) for t in classes for q in classes if counts[(t, q)]]
        order = [c for _ in range(rounds) for c in cells]
        k = len(classes)
        for cell in order:
            if cell == current:
                continue
            chart = page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]'
                                 ':has(.heatmaplayer)').first
            area = chart.locator(".nsewdrag").first.bounding_box()
            i, j = classes.index(cell[0]), classes.index(cell[1])
            x = area["x"] + (j + 0.5) * area["width"] / k
            y = area["y"] + (i + 0.5) * area["height"] / k
            page.mouse.move(x, y)
            page.wait_for_timeout(300)  # plotly picks the hovered point before the click
            t0 = time.perf_counter()
            page.mouse.click(x, y)
            page.wait_for_function(SHOWN_JS, arg=[cell[0], cell[1],
                                                  min(counts[cell], GALLERY_MAX)],
                                   polling="raf", timeout=60_000)
            times.append(time.perf_counter() - t0)
            current = cell
            wait_idle(page)
            wait_rendered(page)
        exc = page.locator('[data-testid="stException"]').all_inner_texts()
        browser.close()
    if exc:
        raise SystemExit("the page raised:\n" + "\n".join(exc))
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if not shutil.which("chromium"):
        raise SystemExit("chromium is not installed; run scripts/install-browser.sh")
    tmp = Path(tempfile.mkdtemp(prefix=f"faceml-bench-evb-{os.getpid()}-"))
    try:
        from bench.evaluate import make_run

        os.environ["FACEML_CACHE_DIR"] = str(tmp / "cache")
        run_id = make_run(tmp / "a" / "runs", a.n, seed=0)
        shutil.copytree(tmp / "a" / "runs", tmp / "b" / "runs")

        from faceml.evaluation.evaluate import load_interpretation
        from faceml.runs import RunStore

        interp = load_interpretation(RunStore(tmp / "a" / "runs").get(run_id), "test")
        head = interp.heads[0]
        classes = list(head.classes)
        counts = {(t, p): len(interp.cell_members(head, t, p, threshold=0.5))
                  for t in classes for p in classes}

        out = {}
        for name, base, env in (("click", tmp / "a", {}),
                                ("full_rerun_click", tmp / "b", {"FACEML_UI_FRAGMENTS": "0"})):
            with serve_app(base, env=env) as url:
                ts = clicks(url, run_id, counts, classes, a.rounds)
            out[f"{name}_ms"] = round(statistics.median(ts[1:] or ts) * 1000)
            out[f"{name}_max_ms"] = round(max(ts) * 1000)
            out[f"{name}_count"] = len(ts)
        print(json.dumps({"n": a.n, "head": head.name, **out,
                          "speedup": round(out["full_rerun_click_ms"] / max(out["click_ms"], 1),
                                           2),
                          "goal_ms": 300, "browser": "chromium (playwright, headless)"}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
