"""Predict flow in a real browser: choose a trained run as the model -> upload a photo -> see
the photo with its face boxed, the crop the model sees and every head's answer."""

import re
import time

import pytest

from .conftest import assert_no_exception, served_run, wait_idle, wait_rendered

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser

HEADS = {"eyewear": ("none", "glasses"), "expression": ("neutral", "smiling", "frowning")}


@pytest.fixture
def classifier_run(app_server, monkeypatch):
    """A tiny finished RGB classifier in the server's run store (trained here, in-process)."""
    from faceml.preprocessing import PrepOptions
    from faceml.training import TrainConfig

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 300}, size=32,
                                       color="rgb"),
                      arch="small_cnn", heads=list(HEADS), epochs=2, batch_size=32)
    with served_run(app_server, monkeypatch, cfg) as run:
        yield run


@pytest.fixture
def photo(tmp_path):
    from PIL import Image
    from skimage import data

    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, "JPEG", quality=90)
    return path


def test_upload_shows_boxes_crops_answers(page, app_server, classifier_run, photo, shot):
    t0 = time.monotonic()
    page.goto(f"{app_server}/predict")
    wait_idle(page)
    assert_no_exception(page)

    # the run as the model (bundled models come first in the list)
    page.get_by_role("combobox", name="Model").click()
    page.get_by_role("option", name=re.compile(rf"^Run {classifier_run.id} ")).click()
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Model")).to_have_value(
        re.compile(rf"^Run {classifier_run.id} "))
    assert_no_exception(page)
    shot("1-model-chosen")

    page.set_input_files('input[type="file"]', str(photo))
    main = page.locator('[data-testid="stMain"]')
    photo_cap = main.locator('[data-testid="stImageCaption"]').filter(
        has_text=re.compile(r"^512×512 px · "))
    expect(photo_cap).to_have_count(1, timeout=60_000)
    wait_idle(page)
    wait_rendered(page)
    assert_no_exception(page)
    assert not main.locator('[data-testid="stAlertContentError"]').count(), \
        main.locator('[data-testid="stAlertContentError"]').all_inner_texts()

    # the photo, with the box(es) drawn
    cap = photo_cap.inner_text()
    m = re.search(r"(\d+) face\(s\) found", cap)
    assert m and int(m.group(1)) >= 1, f"no face detected in the astronaut photo: {cap!r}"
    n_faces = int(m.group(1))
    photo_img = main.locator('[data-testid="stImage"]').filter(
        has=page.locator('[data-testid="stImageCaption"]', has_text=re.compile(r"^512×512 px · ")))\
        .locator("img")
    expect(photo_img).to_be_visible()
    assert photo_img.evaluate("e => e.naturalWidth") > 0
    expect(main.locator('[data-testid="stHeading"]').filter(has_text="Face 1")).to_be_visible()
    expect(main.get_by_text(re.compile(r"^box x=\d+, y=\d+, \d+×\d+ px")).first).to_be_visible()

    # the crop the model sees, one per face
    crops = main.locator('[data-testid="stImage"]').filter(
        has=page.locator('[data-testid="stImageCaption"]',
                         has_text="what the model sees: 32×32 RGB")).locator("img")
    expect(crops).to_have_count(n_faces)
    expect(crops.first).to_be_visible()
    assert crops.first.evaluate("e => e.naturalWidth") > 0

    # every head's answer: its predicted class, and a probability bar per class
    for head, classes in HEADS.items():
        answer = main.locator('[data-testid="stMarkdown"]').filter(
            has_text=re.compile(rf"^{head}: ({'|'.join(classes)})$"))
        expect(answer).to_have_count(n_faces)
        for cls in classes:
            bar = main.locator('[data-testid="stProgress"]').filter(
                has_text=re.compile(rf"^{cls} — \d+(\.\d)?%$"))
            expect(bar).to_have_count(n_faces)
    assert_no_exception(page)
    shot("2-predicted")
    print(f"\npredict flow: {n_faces} face(s), {cap!r} in {time.monotonic() - t0:.1f} s")
