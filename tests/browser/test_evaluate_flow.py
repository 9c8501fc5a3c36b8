"""Evaluate flow in a real browser: open a trained run -> click a confusion-matrix cell -> see
the faces of that cell (their captions name the true and predicted class and the file)."""

import re
import time

import pytest

from .conftest import assert_no_exception, charts, served_run, wait_idle, wait_rendered

expect = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser

HEAD = "expression"  # the first head: 3 classes, no threshold slider
GALLERY_MAX = 18  # ui.evaluate.PER_PAGE


@pytest.fixture
def trained_run(app_server, monkeypatch):
    """A tiny finished classifier in the server's run store (trained here, in-process)."""
    from faceml.data.prepare import PrepOptions
    from faceml.config import TrainConfig

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 300}, size=16,
                                       color="gray"),
                      arch="small_cnn", heads=[HEAD, "eyewear"], epochs=2, batch_size=32)
    with served_run(app_server, monkeypatch, cfg) as run:
        yield run


def test_click_cell_shows_its_faces(page, app_server, trained_run, shot):
    from faceml.evaluation.evaluate import load_interpretation

    t0 = time.monotonic()
    run = trained_run
    interp = load_interpretation(run, "test")
    head = interp.head(HEAD)
    classes = list(head.classes)
    counts = {(t, p): len(interp.cell_members(head, t, p)) for t in classes for p in classes}

    page.goto(f"{app_server}/evaluate?run={run.id}")
    wait_idle(page)
    assert_no_exception(page)
    expect(page.get_by_role("combobox", name="Head")).to_have_value(HEAD)
    page.get_by_role("tab", name="Confusion matrix").click()
    wait_rendered(page)
    shot("1-matrix")

    # the cell the page shows first, then a different, non-empty cell to click
    t_sel = page.get_by_role("combobox", name="True class").first
    p_sel = page.get_by_role("combobox", name="Predicted class").first
    before = (t_sel.input_value(), p_sel.input_value())
    want = next(((t, p) for (t, p), n in sorted(counts.items(), key=lambda kv: -kv[1])
                 if n and (t, p) != before), None)
    assert want is not None, f"no other non-empty cell than {before}: {counts}"
    i, j = classes.index(want[0]), classes.index(want[1])

    chart = charts(page).filter(has=page.locator(".heatmaplayer")).first
    area = chart.locator(".nsewdrag").first.bounding_box()
    k = len(classes)
    x = area["x"] + (j + 0.5) * area["width"] / k  # columns: predicted
    y = area["y"] + (i + 0.5) * area["height"] / k  # rows: true (axis reversed: first on top)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)  # plotly picks the hovered point before the click
    page.mouse.click(x, y)
    wait_idle(page)
    expect(t_sel).to_have_value(want[0])
    expect(p_sel).to_have_value(want[1])
    wait_idle(page)
    wait_rendered(page)
    assert_no_exception(page)

    n = counts[want]
    headline = page.locator('[data-testid="stMarkdown"]').filter(
        has_text=re.compile(rf"faces with true {re.escape(want[0])} predicted "
                            rf"{re.escape(want[1])}"))
    expect(headline).to_have_count(1)
    assert re.search(rf"\b{n:,} faces\b", headline.inner_text()), (headline.inner_text(), n)

    # the faces: images whose captions name the true and predicted class and the file name
    panel = page.locator('[data-testid="stTabPanel"]:visible')
    caps = panel.locator('[data-testid="stImageCaption"]').filter(
        has_text=f"true {want[0]} → pred {want[1]}")
    expect(caps.first).to_be_visible()
    shown = min(n, GALLERY_MAX)
    expect(caps).to_have_count(shown)
    expect(panel.locator('[data-testid="stImage"] img')).to_have_count(shown)
    sources = set(interp.cell_members(head, *want)["source"].astype(str))
    texts = caps.all_inner_texts()
    assert all(any(s in c for s in sources) for c in texts), (texts[:3], sorted(sources)[:3])
    shot("2-cell-faces")
    print(f"\nevaluate flow: clicked {want} ({n} faces) in {time.monotonic() - t0:.1f} s")
