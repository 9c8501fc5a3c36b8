"""The bundled models: each loads with safe_mode=True and answers the same on a fixed face;
v2's card names its data, commands, limits and ethics, and its numbers are evaluate's."""

import re

import numpy as np
import pytest
from PIL import Image

from faceml import paths
from faceml.serving.detect import FaceDetector
from faceml.serving.predict import load_predictor, predict_faces

BUNDLED = paths.PROJECT_ROOT / "models" / "utkface-multitask.keras"


# pinned answers of each committed model on the astronaut's face (recorded when it was bundled):
# P(Female), the race answer and its probability, the age in years
PINNED = {"utkface-multitask": (0.7156, "White", 0.9824, 30.28),
          "faceml-v2": (0.5787, "White", 0.9839, 33.18),
          "faceml-v3": (0.5787, "White", 0.9839, 32.26),  # v2's members, age mapped
          "faceml-v4": (0.5681, "White", 0.9839, 32.26)}  # v3, gender from members 1 and 2


@pytest.fixture(scope="module", params=sorted(PINNED))
def predictor(request):
    path = paths.PROJECT_ROOT / "models" / f"{request.param}.keras"
    if not path.exists():
        pytest.skip(f"no bundled model {path.name}")
    # faceml.modeling.modelio.load_model: safe_mode=True
    return request.param, load_predictor(path)


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

    name, predictor = predictor
    img = Image.fromarray(data.astronaut())
    runs = [predict_faces(img, predictor, FaceDetector()) for _ in range(2)]
    assert [len(r) for r in runs] == [1, 1]
    a, b = runs[0][0], runs[1][0]
    assert np.array_equal(a.crop, b.crop) and a.crop.shape == (64, 64, 3)
    for h in ("gender", "race"):
        assert a.heads[h].probs == b.heads[h].probs
        assert sum(a.heads[h].probs.values()) == pytest.approx(1.0)
    female, race, p_race, years = PINNED[name]
    assert a.heads["gender"].probs["Female"] == pytest.approx(female, abs=2e-3)
    assert a.heads["race"].label == race
    assert a.heads["race"].probs[race] == pytest.approx(p_race, abs=2e-3)
    assert a.heads["age"].years == pytest.approx(years, abs=0.1)
    lo, hi = a.heads["age"].interval
    assert lo < a.heads["age"].years < hi


# --- v2: two runs trained on UTKFace and FairFace at once, averaged with v1's default_cnn -----
V2 = paths.PROJECT_ROOT / "models" / "faceml-v2.keras"
DATA = paths.PROJECT_ROOT.parent / "shared" / "data"


def test_v2_card_names_its_data_commands_limits_and_ethics():
    if not V2.exists():
        pytest.skip("no v2 bundled")
    card = V2.with_suffix(".md").read_text()
    assert V2.stat().st_size <= 10_000_000
    for part in ("## Data and split", "## How it was made", "## Size and speed",
                 "## How it was chosen", "## Metrics on each dataset's own test split",
                 "### utkface", "### fairface", "## Limits and ethics"):
        assert part in card, part
    assert "python -m faceml train --dataset utkface,fairface" in card
    assert "--with 'models/utkface-multitask.keras#2'" in card  # v1's second member
    assert "its commands are in `utkface-multitask.md`" in card and BUNDLED.exists()
    ms = re.search(r"CPU time per face: (\d+\.\d) ms median", card)
    assert ms and float(ms.group(1)) <= 20.0
    ethics = " ".join(card.split("## Limits and ethics", 1)[1].split())
    assert "Race and gender here are the categories of the datasets' annotators" in ethics


V3 = paths.PROJECT_ROOT / "models" / "faceml-v3.keras"


V4 = paths.PROJECT_ROOT / "models" / "faceml-v4.keras"
RELEASES = {V3: "", V4: " --head-members gender=1,2"}  # v2's members: their bundle lines' ends


def test_the_default_is_the_newest_release():
    from faceml.serving.predict import default_model

    newest = max((p for p in (V2, *RELEASES) if p.exists()), key=lambda p: int(p.stem[8:]),
                 default=None)
    if newest is None:
        pytest.skip("no release bundled")
    assert default_model() == newest


@pytest.mark.parametrize("release", sorted(RELEASES), ids=lambda p: p.stem)
def test_releases_are_v2_s_members_with_the_age_map_their_cards_give(release):
    from faceml.modeling.layers import AgeCalibration
    from faceml.modeling.modelio import load_model
    from faceml.serving.bundle import file_members

    if not release.exists():
        pytest.skip(f"no {release.stem} bundled")
    card = release.with_suffix(".md").read_text()
    assert release.stat().st_size <= 10_000_000
    for part in ("## Data and split", "## How it was made", "## How it was chosen",
                 "## Age calibration (carried inside the model)", "## Size and speed",
                 "## Metrics on each dataset's own test split", "### utkface", "### fairface",
                 "## Limits and ethics"):
        assert part in card, part
    assert ("python -m faceml bundle --split-of 8746462592d8 --with models/faceml-v2.keras "
            f"--name {release.stem} --mirror --calibrate-age{RELEASES[release]}\n") in card
    ms = re.search(r"CPU time per face: (\d+\.\d) ms median", card)
    assert ms and float(ms.group(1)) <= 20.0
    # the map the card states is the one in the file
    scale, sign, offset = re.search(r"mapped to `max\(([\d.]+) × age ([+−]) ([\d.]+), 0\)`",
                                    card).groups()
    model = load_model(release)
    layer = next(lay for lay in model.layers if isinstance(lay, AgeCalibration))
    assert float(layer.scale.numpy()) == pytest.approx(float(scale), abs=1e-4)
    assert float(layer.offset.numpy()) == pytest.approx(float(offset) * (-1 if sign == "−" else 1),
                                                       abs=1e-3)
    # its members are v2's, weight for weight
    for a, b in zip(file_members(release), file_members(V2), strict=True):
        for wa, wb in zip(a.model.weights, b.model.weights, strict=True):
            np.testing.assert_array_equal(wa.numpy(), wb.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("bundled", [V2, *sorted(RELEASES)], ids=lambda p: p.stem)
def test_cards_numbers_are_evaluates_on_each_test_split(bundled, capsys, monkeypatch):
    """Reads the 60,199 shared images again (several minutes without a warm cache)."""
    from test_bundle_multi import evaluate_json, section, shown, table

    if not bundled.exists() or not all((DATA / d).is_dir() for d in ("utkface", "fairface")):
        pytest.skip(f"needs models/{bundled.name} and ../shared/data (utkface, fairface)")
    monkeypatch.chdir(paths.PROJECT_ROOT)  # the model's data paths are the project's
    monkeypatch.delenv("FACEML_CACHE_DIR")  # the project's own cache, warm after training
    card = bundled.with_suffix(".md").read_text()
    by_file = evaluate_json(capsys, "--model", str(bundled))["by_dataset"]
    for d in ("utkface", "fairface"):
        rows = table(section(card, f"### {d}", "\n### "))
        for head, *cells in rows[1:]:
            for metric, cell in zip(rows[0][1:], cells):
                assert cell == shown(by_file[d]["heads"][head].get(metric)), (d, head, metric)
