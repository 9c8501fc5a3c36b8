"""VAE studio flow in a real browser: open a trained VAE run -> Latent sliders -> move one
slider -> the decoded face changes."""

import re
import time

import pytest

from .conftest import assert_no_exception, served_run, wait_idle, wait_rendered

expect = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not importable; pip install -r requirements-dev.txt"
).expect

pytestmark = pytest.mark.browser


@pytest.fixture
def vae_run(app_server, monkeypatch):
    """A tiny finished VAE in the server's run store (trained here, in-process)."""
    from faceml.data.prepare import PrepOptions
    from faceml.config import TrainConfig

    cfg = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 300}, size=16,
                                       color="gray"),
                      arch="vae", arch_params={"latent_dim": 4}, heads=[], epochs=2,
                      batch_size=32)
    with served_run(app_server, monkeypatch, cfg) as run:
        yield run


def test_slider_changes_decoded_face(page, app_server, vae_run, shot):
    t0 = time.monotonic()
    page.goto(f"{app_server}/vae?run={vae_run.id}")
    wait_idle(page)
    assert_no_exception(page)
    expect(page.get_by_role("combobox", name="VAE run")).to_have_value(
        re.compile(rf"^{vae_run.id}\b"))
    page.get_by_role("tab", name="Latent sliders").click()
    wait_rendered(page)

    panel = page.locator('[data-testid="stTabPanel"]:visible')
    face = panel.locator('[data-testid="stImage"]').filter(
        has=page.locator('[data-testid="stImageCaption"]', has_text="Decoded face")
    ).locator("img")
    expect(face).to_have_count(1)
    expect(face).to_be_visible()
    before = face.get_attribute("src")
    assert before, "the decoded face has no src"
    shot("1-sliders")

    # a latent slider of an active dimension (an inactive one barely moves the face)
    active = panel.get_by_role("slider", name=re.compile(r"^z\d+ z\d+$"))
    thumb = (active if active.count() else
             panel.get_by_role("slider", name=re.compile(r"^z\d+"))).first
    label = thumb.get_attribute("aria-label")
    expect(thumb).to_have_value("0")  # an <input type="range">
    thumb.focus()
    thumb.press("End")
    expect(thumb).to_have_value("3")
    wait_idle(page)
    expect(face).not_to_have_attribute("src", before, timeout=30_000)
    wait_idle(page)
    assert_no_exception(page)
    after = face.get_attribute("src")
    assert after and after != before
    shot("2-slider-moved")
    print(f"\nvae flow: moved {label} to 3, face {before[-24:]} -> {after[-24:]} "
          f"in {time.monotonic() - t0:.1f} s")
