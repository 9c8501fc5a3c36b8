"""Benchmark: a hosted demo under a class's load — visitors upload photos while runs train.

    python -m bench.hosted_load [--visitors 10] [--training 2] [--replicas 1,2] [--photo PATH]
                                [--mp 13]

Run it from the project's root as a module (it uses the browser tests' server helper).
Serves the app with ``FACEML_HOSTED=1`` (headless Streamlit on 127.0.0.1, its own runs and
cache folders), starts ``--training`` runs training beside it (each its own
``python -m faceml train`` process, as an operator's CLI would), then:

  one_visitor_s   upload -> answer for one visitor alone (the baseline, same server, same load);
  p50_s, p95_s    upload -> answer over ``--visitors`` browser contexts (Playwright, Debian's
                  chromium) that all upload at the same moment, each its own session;
  answered        how many of them got their answers (all must);
  peak_rss_mb     the web process's peak resident memory (VmHWM) at the end;
  cpu_s           where the machine's CPU went while the visitors waited: the web server,
                  the training runs, and the visitors' own browsers (Chromium's processes),
                  which run on this machine too and compete with the server for its 2 cores;
                  ``browsers_by_kind`` splits the browsers' share by process (renderer,
                  browser, gpu-process, utility, Playwright's driver);
  browsers_alone_min_s  the browsers' CPU seconds over the machine's cores: the shortest time
                  the last visitor could have waited even if the server cost nothing (the
                  browsers' own drawing, which real visitors do on their own machines).

The browsers run at the training runs' niceness (the hosting policy's ``train_nice``): below
the server, whose CPU they would not take on their own machines, and not below the training
runs, which on their own machines would not slow them either.

``--replicas N`` serves N copies of the app (N ports, one shared run store, as N replicas behind
a load balancer) and spreads the visitors round-robin across them; ``--replicas 1,2`` measures
each count in turn (a fresh store each, same photo and load) and reports ``p95_s_by_replicas``
with each count's figures in ``by_replicas``; 1 is the baseline, measured in the same process.
On one machine the replicas share its cores: more replicas mean more Python processes (each
with its own GIL and its own copy of the model), not more CPU.

Upload -> answer is timed in the browser, from ``set_input_files`` until the first face's
answer bars are drawn. The photo is a real portrait from ``../shared/data/photos`` (or
scikit-image's astronaut) enlarged to ``--mp`` megapixels and saved as a progressive JPEG, as
phone and camera photos are. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from tests.browser.conftest import CHROMIUM_ARGS, IDLE_JS, serve_app

ROOT = Path(__file__).resolve().parents[1]

ANSWERED_JS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    return !!main && (main.querySelector('[data-testid="stProgress"]') !== null
                      || main.querySelector('[data-testid="stAlertContentError"]') !== null);
}"""


# waits in the page for the answer without polling (a poll every 100 ms in each of 10 pages is
# CPU the visitors' browsers would not spend): a MutationObserver settles it
WAIT_ANSWERED_JS = """() => new Promise(resolve => {
    const answered = %s;
    if (answered()) return resolve(true);
    const obs = new MutationObserver(() => {
        if (answered()) { obs.disconnect(); resolve(true); }
    });
    obs.observe(document.body, {subtree: true, childList: true});
})""" % ANSWERED_JS


def make_photo(path: Path, megapixels: float, source: str | None) -> str:
    from PIL import Image

    if source:
        img = Image.open(source).convert("RGB")
    else:
        shared = ROOT.parent / "shared" / "data" / "photos"
        found = sorted(shared.glob("*.jpg")) if shared.is_dir() else []
        if found:
            img = Image.open(found[0]).convert("RGB")
        else:
            from skimage import data

            img = Image.fromarray(data.astronaut())
    scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    img.save(path, "JPEG", quality=90, progressive=True)
    return f"{img.width}x{img.height} progressive JPEG, {path.stat().st_size / 1e6:.1f} MB"


def start_training(server, n: int, env: dict) -> list[subprocess.Popen]:
    procs = []
    for seed in range(n):
        cmd = [sys.executable, "-m", "faceml", "train", "--dataset", "synthetic",
               "--dataset-option", "n=3000", "--size", "64", "--arch", "default_cnn",
               "--heads", "expression,age", "--epochs", "20", "--seed", str(seed), "--json"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    from faceml.runs import RunStore

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until every run trains
        states = [r.status().get("state") for r in RunStore(server.runs_dir).list()]
        if states.count("running") >= n:
            return procs
        time.sleep(1)
    raise SystemExit(f"the {n} training runs did not start: {states}")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far, user + system)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)
    return out


def _tree(roots: list[int], table: dict[int, tuple[int, float]]) -> list[int]:
    """``roots`` and all their descendants in ``table``."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


def cpu_by_group(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of process trees (a pid and its descendants)."""
    table = _proc_table()
    return {name: sum(table.get(pid, (0, 0.0))[1] for pid in _tree(roots, table))
            for name, roots in groups.items()}


def _kind(pid: int) -> str:
    """What a browser-side process is: Playwright's driver, or Chromium's main process or one
    of its children by ``--type`` (renderer, gpu-process, utility, zygote)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return "gone"
    # Chromium rewrites its children's command line into one space-joined string
    kind = re.search(r"--type=(\S+)", cmd)
    if kind:
        return kind.group(1)
    return "driver" if Path(cmd.split(" ", 1)[0]).name == "node" else "browser"


def cpu_by_kind(roots: list[int]) -> dict[str, float]:
    """CPU seconds used so far by the process trees ``roots``, by process kind (:func:`_kind`)."""
    table = _proc_table()
    out: dict[str, float] = {}
    for pid in _tree(roots, table):
        k = _kind(pid)
        out[k] = out.get(k, 0.0) + table.get(pid, (0, 0.0))[1]
    return out


def browser_niceness() -> int:
    """The niceness the visitors' browsers get: the training processes' own (the hosting
    policy's ``train_nice``). The browsers stand for machines of their own: they must not take
    the CPU the server needs to answer them (so they are below the server), and on their own
    machines no training run slows them either (so they are not below the training runs,
    which would hand those runs most of the CPU a browser needs to draw its answer)."""
    from faceml.hosting import HostingPolicy

    return HostingPolicy.train_nice


def lower_priority(roots: list[int], nice: int) -> None:
    """Give these process trees niceness ``nice``."""
    for pid in _tree(roots, _proc_table()):
        try:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        except OSError:  # gone meanwhile
            pass


async def open_page(browser, url: str):
    """A new visitor (its own context: cookies, session) on the Predict page, idle."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000},
                                    reduced_motion="reduce")
    ctx.set_default_timeout(180_000)
    page = await ctx.new_page()
    await page.goto(f"{url}/predict")
    await page.wait_for_function(IDLE_JS, polling=100)
    return ctx, page


async def upload(page, photo: Path) -> float | None:
    """Seconds from choosing the file until the answers are drawn (None: an error instead)."""
    t0 = time.perf_counter()
    await page.set_input_files('input[type="file"]', str(photo))
    await page.evaluate(WAIT_ANSWERED_JS)
    dt = time.perf_counter() - t0
    err = page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]')
    if await err.count():
        print(f"a visitor got an error: {await err.all_inner_texts()}", file=sys.stderr)
        return None
    return dt


async def load(urls: list[str], photo: Path, visitors: int, groups: dict[str, list[int]],
               own_cores: bool = True):
    """Returns (one visitor's time, every visitor's time, CPU seconds by group meanwhile).
    Visitor ``i`` goes to ``urls[i % len(urls)]`` (round-robin, as a load balancer spreads new
    sessions); the one visitor alone, the baseline, goes to the first."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"),
                                          args=CHROMIUM_ARGS)
        # the browsers: Playwright's driver and its Chromium, this process's other children
        known = {pid for pids in groups.values() for pid in pids}
        groups = {**groups, "browsers": [pid for pid, (ppid, _) in _proc_table().items()
                                         if ppid == os.getpid() and pid not in known]}
        if own_cores:
            # renderers fork from these: they inherit it
            lower_priority(groups["browsers"], browser_niceness())
        for url in urls:  # warm-up: each server loads the model once
            ctx, page = await open_page(browser, url)
            await upload(page, photo)
            await ctx.close()
        ctx, page = await open_page(browser, urls[0])
        one = await upload(page, photo)  # the baseline: one visitor alone
        await ctx.close()
        opened = await asyncio.gather(*(open_page(browser, urls[i % len(urls)])
                                        for i in range(visitors)))
        if own_cores:
            lower_priority(groups["browsers"], browser_niceness())
        before, kinds0 = cpu_by_group(groups), cpu_by_kind(groups["browsers"])
        times = await asyncio.gather(*(upload(pg, photo) for _, pg in opened))  # all at once
        after, kinds1 = cpu_by_group(groups), cpu_by_kind(groups["browsers"])
        for ctx, _ in opened:
            await ctx.close()
        await browser.close()
    cpu = {k: round(after[k] - before[k], 2) for k in groups}
    cpu["browsers_by_kind"] = {k: round(v - kinds0.get(k, 0.0), 2) for k, v in kinds1.items()
                               if v - kinds0.get(k, 0.0) >= 0.01}
    return one, list(times), cpu


def measure(replicas: int, a, photo: Path) -> dict:
    """Serve ``replicas`` copies of the hosted app on one fresh run store (each its own port,
    log and cache, as replicas behind a load balancer), start the training runs, and time the
    visitors spread round-robin across the copies."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = Path(tmp)
        store = base / "runs"  # the one store every replica names
        env = {"FACEML_HOSTED": "1", "FACEML_SHARED_DATA": str(base / "no-data")}
        urls = [stack.enter_context(serve_app(base / f"replica{i}", env=env, runs_dir=store))
                for i in range(replicas)]
        train_env = {**os.environ, **env, "FACEML_RUNS_DIR": str(store),
                     "FACEML_CACHE_DIR": str(base / "cache"), "PYTHONPATH": str(ROOT)}
        procs = start_training(urls[0], a.training, train_env) if a.training else []
        try:
            groups = {"server": [u.pid for u in urls], "training": [q.pid for q in procs]}
            one, times, cpu = asyncio.run(load(urls, photo, a.visitors, groups,
                                               own_cores=not a.browsers_compete))
            rss = [round(u.peak_rss_mb()) for u in urls]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
    ok = [t for t in times if t is not None]
    return {"replicas": replicas, "answered": len(ok),
            "one_visitor_s": round(one, 2) if one else None,
            "p50_s": round(float(np.percentile(ok, 50)), 2) if ok else None,
            "p95_s": round(float(np.percentile(ok, 95)), 2) if ok else None,
            "max_s": round(max(ok), 2) if ok else None,
            "peak_rss_mb": rss[0] if replicas == 1 else rss, "cpu_s": cpu,
            "server_cpu_per_upload_s": round(cpu["server"] / a.visitors, 3),
            "browser_cpu_per_upload_s": round(cpu["browsers"] / a.visitors, 3),
            "browsers_alone_min_s": round(cpu["browsers"] / (os.cpu_count() or 1), 2)}


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of replica counts ≥ 1, "
                                         "e.g. 1 or 1,2")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--visitors", type=int, default=10)
    ap.add_argument("--training", type=int, default=2, help="runs training meanwhile")
    ap.add_argument("--replicas", type=_counts, default=[1],
                    help="app servers sharing one run store, visitors spread round-robin; "
                         "several counts (1,2) are measured one after the other")
    ap.add_argument("--photo", default=None, help="a portrait to enlarge (default: shared)")
    ap.add_argument("--mp", type=float, default=13.0, help="megapixels of the uploaded photo")
    ap.add_argument("--browsers-compete", action="store_true",
                    help="leave the browsers at normal CPU priority (they take the server's "
                         "cores, as no real visitor's browser does)")
    a = ap.parse_args()
    if not shutil.which("chromium"):
        raise SystemExit("chromium is not installed; run scripts/install-browser.sh")

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        described = make_photo(photo, a.mp, a.photo)
        results = [measure(n, a, photo) for n in a.replicas]
    out = {"bench": "hosted_load", "visitors": a.visitors, "training_runs": a.training,
           "photo": described, "goal_p95_s": 3.0,
           "browsers_nice": None if a.browsers_compete else browser_niceness(),
           "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    if len(results) == 1:
        out.update(results[0])
    else:  # the first count is the baseline, measured in the same process
        out["p95_s_by_replicas"] = {str(r["replicas"]): r["p95_s"] for r in results}
        out["by_replicas"] = results
    print(json.dumps(out))


if __name__ == "__main__":
    main()
