"""The bundled model: loads with safe_mode=True and answers the same on a fixed face."""

import numpy as np
import pytest
from PIL import Image

from faceml import paths
from faceml.serving.detect import FaceDetector
from faceml.serving.predict import load_predictor, predict_faces

BUNDLED = paths.PROJECT_ROOT / "models" / "utkface-multitask.keras"


@pytest.fixture(scope="module")
def predictor():
    if not BUNDLED.exists():
        pytest.skip("no bundled model")
    return load_predictor(BUNDLED)  # faceml.modeling.modelio.load_model: safe_mode=True


def test_bundled_model_card_and_size():
    assert BUNDLED.stat().st_size <= 10_000_000
    card = BUNDLED.with_suffix(".md").read_text()
    for section in ("## Data and split", "## Preprocessing", "## How it was made",
                    "## Metrics on the test split", "## Per group", "## Intended use",
                    "## Limits and ethics"):
        assert section in card
    assert "python -m faceml train --dataset utkface" in card
    # the goals on the project's own test split, read from the card's metrics table
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in card.split("## Metrics on the test split")[1].split("##")[0].splitlines()
            if line.startswith("| ") and not line.startswith("| head")}
    assert float(rows["gender"][0]) >= 0.92 and float(rows["race"][0]) >= 0.80
    assert float(rows["age"][4]) <= 6.0


def test_bundled_model_is_stable_on_a_fixed_face(predictor):
    from skimage import data

    img = Image.fromarray(data.astronaut())
    runs = [predict_faces(img, predictor, FaceDetector()) for _ in range(2)]
    assert [len(r) for r in runs] == [1, 1]
    a, b = runs[0][0], runs[1][0]
    assert np.array_equal(a.crop, b.crop) and a.crop.shape == (64, 64, 3)
    for h in ("gender", "race"):
        assert a.heads[h].probs == b.heads[h].probs
        assert sum(a.heads[h].probs.values()) == pytest.approx(1.0)
    # pinned answers of the committed model on this face (recorded when it was bundled)
    assert a.heads["gender"].probs["Female"] == pytest.approx(0.7156, abs=2e-3)
    assert a.heads["race"].label == "White"
    assert a.heads["race"].probs["White"] == pytest.approx(0.9824, abs=2e-3)
    assert a.heads["age"].years == pytest.approx(30.28, abs=0.1)
    lo, hi = a.heads["age"].interval
    assert lo < a.heads["age"].years < hi
