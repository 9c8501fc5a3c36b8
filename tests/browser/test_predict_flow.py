"""Predict flow in a real browser: choose a trained run as the model -> upload a photo -> see
the photo with its face boxed, the crop the model sees and every head's answer; a 20 MP camera
photo (upload -> answer time and the server's CPU time per upload, printed); no image the page
shows can be fetched by another client; a refused upload says why in the page and clears the
previous photo's answers."""

import os
import re
import statistics
import time
from pathlib import Path

import pytest

from .conftest import ROOT, assert_no_exception, served_run, wait_idle, wait_rendered

expect = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser

HEADS = {"eyewear": ("none", "glasses"), "expression": ("neutral", "smiling", "frowning")}


@pytest.fixture
def classifier_run(app_server, monkeypatch):
    """A tiny finished RGB classifier in the server's run store (trained here, in-process)."""
    from faceml.data.prepare import PrepOptions
    from faceml.config import TrainConfig

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


# --- camera photos, privacy, refused uploads --------------------------------------------------

PHOTO_MP = 20


@pytest.fixture(scope="module")
def camera_photos(tmp_path_factory):
    """About 20 MP progressive JPEGs, quality 90: the shared portraits upscaled (with a little
    camera-like noise), else the astronaut on a 5472×3648 canvas."""
    from tests.photo_fixtures import canvas, jpeg, upscaled

    out = tmp_path_factory.mktemp("camera")
    shared = ROOT.parent / "shared" / "data" / "photos"
    files = sorted(shared.glob("*.jpg"))[:3] if shared.is_dir() else []
    paths = []
    for i, f in enumerate(files):  # 19.6, 20.0, 20.4 MP: each photo's size is its own
        paths.append(out / f"portrait{i}-{PHOTO_MP}MP.jpg")
        paths[-1].write_bytes(upscaled(f, PHOTO_MP + 0.4 * (i - 1), noise=3.0, seed=i))
    if not paths:
        img, _ = canvas((5472, 3648), 3648)
        paths.append(out / f"astronaut-{PHOTO_MP}MP.jpg")
        paths[-1].write_bytes(jpeg(img, progressive=True))
    return paths


@pytest.fixture
def any_model(request):
    """The bundled model when there is one (the page's default), else a trained run."""
    if sorted((ROOT / "models").glob("*.keras")):
        return None
    return request.getfixturevalue("classifier_run")


def _choose(page, run) -> None:
    if run is not None:
        page.get_by_role("combobox", name="Model").click()
        page.get_by_role("option", name=re.compile(rf"^Run {run.id} ")).click()
        wait_idle(page)


def _server_pid(app_server) -> int:
    pid = getattr(app_server, "pid", None)
    if pid:
        return pid
    port = app_server.rsplit(":", 1)[1].encode()
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(cmd) and port in cmd:
            return int(d.name)
    pytest.fail("the streamlit server's pid was not found")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _photo_caption(main, width: int, height: int):
    return main.locator('[data-testid="stImageCaption"]').filter(
        has_text=re.compile(rf"^{width}×{height} px · "))


def _image_urls(page) -> list[str]:
    """Every image URL on the page: <img src>, <source srcset> and CSS backgrounds."""
    return page.evaluate("""() => {
        const urls = new Set();
        document.querySelectorAll('img').forEach(i => i.currentSrc && urls.add(i.currentSrc));
        document.querySelectorAll('img[src], source[srcset]').forEach(e =>
            urls.add(e.getAttribute('src') || e.getAttribute('srcset')));
        document.querySelectorAll('[style*="url("]').forEach(e => {
            const m = e.getAttribute('style').match(/url\\(["']?([^"')]+)/);
            if (m) urls.add(m[1]);
        });
        return [...urls].filter(Boolean);
    }""")


def test_camera_photo_upload_answer_time_and_privacy(page, browser, app_server, camera_photos,
                                                       any_model, shot):
    """20 MP photos: each answered (boxed photo, crop, answers) from a downscaled copy; the
    upload -> answer time and the server's CPU time per upload are printed (bench/ holds the
    goals: no timed asserts here). A second browser context (another visitor) cannot fetch any
    image URL the first page shows: every image is an inline data: URI."""
    from PIL import Image

    page.goto(f"{app_server}/predict")
    wait_idle(page)
    _choose(page, any_model)
    main = page.locator('[data-testid="stMain"]')
    # warm: the model is loaded (st.cache_resource) by a first, small photo
    from skimage import data

    warm = camera_photos[0].parent / "warm.jpg"
    Image.fromarray(data.astronaut()).save(warm, "JPEG", quality=90)
    page.set_input_files('input[type="file"]', str(warm))
    expect(_photo_caption(main, 512, 512)).to_have_count(1, timeout=90_000)
    wait_idle(page)

    pid = _server_pid(app_server)
    times, cpus = [], []
    for path in camera_photos:
        with Image.open(path) as im:
            w, h = im.size
        cpu0, t0 = _cpu_s(pid), time.monotonic()
        page.set_input_files('input[type="file"]', str(path))
        cap = _photo_caption(main, w, h)
        expect(cap).to_have_count(1, timeout=60_000)
        expect(main.locator('[data-testid="stHeading"]').filter(has_text="Face 1")).to_be_visible()
        expect(main.locator('[data-testid="stProgress"]').first).to_be_visible()
        times.append(time.monotonic() - t0)
        wait_idle(page)
        cpus.append(_cpu_s(pid) - cpu0)
        assert_no_exception(page)
        assert not main.locator('[data-testid="stAlertContentError"]').count()
        assert re.search(r"· 1 face\(s\) found", cap.inner_text()), cap.inner_text()
        # the photo shown is a downscaled copy, inline
        img = main.locator('[data-testid="stImage"]').filter(has=page.locator(
            '[data-testid="stImageCaption"]', has_text=re.compile(rf"^{w}×{h} px · "))
        ).locator("img")
        src = img.get_attribute("src")
        assert src.startswith("data:image/jpeg;base64,"), src[:60]
        nw, nh = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
        assert 0 < nw <= 900 and 0 < nh <= 560 and nw * nh < w * h / 50, (nw, nh)
    shot("camera-photo")
    print(f"\n{PHOTO_MP} MP photo upload -> answer in the browser: "
          + ", ".join(f"{t:.2f}" for t in times) + f" s (median {statistics.median(times):.2f});"
          " server CPU per upload (whole rerun, incl. Streamlit): "
          + ", ".join(f"{c:.2f}" for c in cpus) + f" s (median {statistics.median(cpus):.2f})")

    # another visitor: a fresh context requests every image URL this page shows
    urls = _image_urls(page)
    assert len(urls) >= 2, urls  # the photo and the crop
    other = browser.new_context()
    try:
        for url in urls:
            assert url.startswith("data:"), f"an image is served by URL: {url[:80]}"
        # and the media store has nothing for this session's photos (what st.image used)
        for url in [u for u in urls if not u.startswith("data:")] + [f"{app_server}/media/"]:
            r = other.request.get(url if url.startswith("http") else f"{app_server}{url}")
            assert r.status != 200 or not r.headers.get("content-type", "").startswith("image/")
    finally:
        other.close()


def test_a_refused_upload_says_why_and_clears_the_previous_answers(page, app_server, any_model,
                                                                     tmp_path):
    """Too big for the uploader (refused by the browser, never sent): the reason appears in
    the page and the previous photo and its answers go. A PDF (sent, not an image): an error
    in the page, and no answers."""
    from PIL import Image
    from skimage import data

    good = tmp_path / "face.jpg"
    Image.fromarray(data.astronaut()).save(good, "JPEG", quality=90)
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(b"\xff\xd8\xff" + os.urandom(11 * 1024 * 1024))
    pdf = tmp_path / "notes.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a photo")
    page.goto(f"{app_server}/predict")
    wait_idle(page)
    _choose(page, any_model)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text(re.compile(r"up to 10 MB"))).to_be_visible()
    face1 = main.locator('[data-testid="stHeading"]').filter(has_text="Face 1")

    page.set_input_files('input[type="file"]', str(good))
    expect(face1).to_be_visible(timeout=90_000)
    wait_idle(page)
    page.set_input_files('input[type="file"]', str(huge))
    notice = main.locator('[data-testid="prUploadNotice"] [role="alert"]')
    expect(notice).to_have_text(re.compile(r"huge\.jpg was not uploaded: File must be 10\.0MB "
                                           r"or smaller\. Photos are accepted"), timeout=20_000)
    expect(face1).to_have_count(0, timeout=20_000)  # the previous answers are gone
    wait_idle(page)
    expect(main.locator('[data-testid="stImage"]')).to_have_count(0)
    assert_no_exception(page)

    page.set_input_files('input[type="file"]', str(good))
    expect(face1).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(notice).to_have_count(0)  # a good upload: the notice goes
    page.set_input_files('input[type="file"]', str(pdf))
    err = main.locator('[data-testid="stAlertContentError"]')
    expect(err).to_have_text(re.compile(r"This file cannot be used: not an image file"),
                             timeout=60_000)
    expect(face1).to_have_count(0)
    wait_idle(page)
    assert_no_exception(page)
