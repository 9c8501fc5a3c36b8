"""Course recipes: every notebook experiment as a named, exact training configuration.

A :class:`Recipe` names the dataset and every data option, the architecture and its
parameters, the heads and the hyperparameters (a :class:`~faceml.config.TrainConfig`), the
notebook's printed parameter counts, and what the notebook itself reported (:class:`Claim`),
with a note and the corrected figure where the notebook's number was wrong. A sweep recipe
carries its grid (run by :func:`faceml.training.sweeps.launch_grid`); a recipe may name an
evaluation step on another dataset (``python -m faceml evaluate``).

    r = recipes.get("fairface-mlp-gender")
    cfg = r.config(path="/data/fairface", epochs=1)      # allowed overrides
    recipes.sizes(r)                                      # counted without weights
    recipes.matching_runs(r, RunStore())                  # "ours": runs of this recipe

Runs of a recipe are ordinary runs (same id for the same config): ``matching_runs`` finds those
whose config equals the recipe's except the :data:`OVERRIDES` (path, epochs, fraction, split
and validation source) and, for a sweep, its grid keys.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from faceml.config import TrainConfig
from faceml.data.base import LabelSpec
from faceml.data.mapping import GENDERS
from faceml.errors import ConfigError, DataError, FaceMLError

NOTEBOOKS = {
    "fairface": "FairFace, 32×32 gray (MLP, CNNs, multi-task, conv VAE)",
    "utkface-csv": "UTKFace CSV, 48×48 gray (age bins, ethnicity, gender)",
    "utkface-128": "UTKFace, 128×128 RGB (own CNN, VGG16)",
    "celeba": "CelebA, 224×224 RGB (VGG16, lr × batch sweep)",
    "gender-folder": "Class-per-folder gender, 100×100 RGB (baseline, augmentation, VGG16)",
}

OVERRIDES = {"path": "dataset location", "epochs": "epochs", "fraction": "sample fraction",
             "split": "split fractions (and so the validation source)"}
"""What may differ between a recipe and a run still counted as its run."""

# config keys those overrides touch (a canonical dict's paths)
_OVERRIDE_KEYS = (("data", "path"), ("epochs",), ("data", "fraction"), ("data", "split"),
                  ("data", "holdout"), ("repeat",))


@dataclass(frozen=True)
class Claim:
    """One figure the notebook reported: ``metric`` of ``head`` on ``split``."""

    head: str | None  # None: not a head's metric (a VAE's loss)
    metric: str  # a key of a run's metrics: accuracy, mae, …
    split: str  # val | test
    value: float | None  # what the notebook printed (None: it printed none)
    note: str = ""  # where the figure was wrong, and why
    corrected: float | None = None  # the right figure, where known

    def label(self) -> str:
        return f"{self.split} {self.head + ' ' if self.head else ''}{self.metric}"

    def to_dict(self) -> dict:
        return {"head": self.head, "metric": self.metric, "split": self.split,
                "value": self.value, "note": self.note, "corrected": self.corrected}


@dataclass(frozen=True)
class Recipe:
    name: str
    notebook: str  # a key of NOTEBOOKS
    title: str
    settings: dict  # TrainConfig.from_dict input (``data`` nested)
    params: tuple[int, int] | None = None  # the notebook's printed (total, trainable)
    claims: tuple[Claim, ...] = ()
    notes: tuple[str, ...] = ()  # how the recipe follows (or departs from) the notebook
    grid: dict = field(default_factory=dict)  # sweep recipe: config key -> values
    evaluate: str = ""  # an evaluation step after training, in words and a command
    labels: tuple[LabelSpec, ...] = ()  # for sizing where the dataset knows them only on disk

    @property
    def dataset(self) -> str:
        return self.settings["data"]["dataset"]

    def config(self, path: str | None = None, epochs: int | None = None,
               fraction: float | None = None, split=None) -> TrainConfig:
        """The recipe's TrainConfig with the allowed overrides; ``split`` (three fractions)
        validates on faces carved from train (``holdout="carve"``)."""
        d = copy.deepcopy(self.settings)
        data = d["data"]
        if path not in (None, ""):
            data["path"] = str(path)
        if epochs is not None:
            d["epochs"] = int(epochs)
        if fraction is not None:
            data["fraction"] = float(fraction)
        if split is not None:
            data["split"] = [float(v) for v in split]
            data["holdout"] = "carve"
        return TrainConfig.from_dict(d)

    def sizing_labels(self) -> dict[str, LabelSpec]:
        """The labels the model is sized for, without reading the dataset."""
        from faceml import data as datasets
        from faceml.data.prepare import binned_labels

        cfg = self.config()
        declared = dict(datasets.get(self.dataset).label_specs()) or \
            {spec.name: spec for spec in self.labels}
        return binned_labels(cfg.data, declared)

    def summary(self) -> dict:
        """The settings in a few words (for lists and the page)."""
        cfg = self.config()
        d = cfg.data
        split = "official val" if d.holdout == "official" else "carved " + ",".join(
            f"{v:g}" for v in d.split)
        parts = {"dataset": d.dataset, "input": f"{d.size}×{d.size} {d.color}",
                 "scaling": cfg.scaling, "split": split, "arch": cfg.arch,
                 "heads": ", ".join(cfg.heads) or "—",
                 "optimizer": f"{cfg.optimizer} lr {cfg.lr:g}", "batch": cfg.batch_size,
                 "epochs": cfg.epochs}
        if cfg.arch_params:
            parts["params"] = cfg.arch_params
        if d.fraction != 1:
            parts["fraction"] = d.fraction
        if d.age != "years":
            parts["age"] = d.age
        if cfg.binary_output != "sigmoid":
            parts["binary output"] = cfg.binary_output
        if cfg.augmentation:
            parts["augmentation"] = ", ".join(cfg.augmentation)
        return parts


# --- the recipes ------------------------------------------------------------------------------
def _fairface(arch: str, heads: list[str], epochs: int, **extra) -> dict:
    return {"data": {"dataset": "fairface", "size": 32, "color": "gray", "holdout": "official"},
            "arch": arch, "heads": heads, "scaling": "minmax", "optimizer": "adam", "lr": 1e-3,
            "batch_size": 32, "epochs": epochs,
            "binary_output": "softmax2", **extra}


def _age_corner(value: float, corrected: float) -> Claim:
    return Claim("age", "accuracy", "val", value, corrected=corrected,
                 note="read off the 2×2 top-left corner of the 9×9 confusion matrix "
                      "(two classes' hits over those two classes' faces), not the trace "
                      "over all faces; the true accuracy over the nine bins is lower")


_FAIRFACE_NOTES = ("Notebook-faithful: trains on every official train face and validates on "
                   "FairFace's official val (fairface_label_val.csv); on a copy without it run "
                   "with --split 0.8,0.1,0.1.",
                   "Pixels min-max scaled per pixel on train (the notebook's MinMaxScaler).")

_UTK_CSV = {"dataset": "utkface-csv", "size": 48, "color": "gray", "split": [0.7, 0.3, 0.0]}
_UTK_CSV_NOTES = ("70/30 split as the notebook's train_test_split: no test split, so results "
                  "are on the 30 % validation faces.", "Pixels /255 (scaling unit).")
_SMALL_CSV = {"filters": [2, 4], "dense_units": 0}

_CELEBA_FRACTION = round(30_000 / 202_599, 6)  # 30k of CelebA's 202,599 faces
_CELEBA = {"dataset": "celeba", "size": 224, "color": "rgb", "fraction": _CELEBA_FRACTION}
_CELEBA_NOTES = (f"30k faces: a {_CELEBA_FRACTION} sample of the 202,599, stratified; CelebA's "
                 "official partition is kept, so train/val/test come out ≈24.1k/2.9k/3.0k, "
                 "not exactly the notebook's 24k/3k/3k.",
                 "Head: VGG16's 7×7×512 map flattened into a bare Dense(2, softmax).")
_VGG_BARE = {"pooling": "flatten", "dense": []}

_FOLDER = {"dataset": "folder", "size": 100, "color": "rgb", "holdout": "official"}
_FOLDER_NOTES = ("The set's test/ folder is the validation set (--val-split official); the "
                 "class folders must be gender-named (male/female, men/women…).",
                 "Epochs, batch and optimizer: FaceML's defaults (10, 64, Adam 1e-3).")
_FOLDER_LABELS = (LabelSpec("gender", "binary", GENDERS),)
_VGG_FC = {"dense": [512, 256], "dropout": 0.5}

RECIPES: tuple[Recipe, ...] = (
    # FairFace (32×32 gray, min-max, Adam 1e-3, batch 32)
    Recipe("fairface-mlp-gender", "fairface", "MLP (1024 tanh → 512 sigmoid → 100 relu), gender",
           _fairface("mlp", ["gender"], 10), (1_625_902, 1_625_902),
           (Claim("gender", "accuracy", "val", 0.716),), _FAIRFACE_NOTES),
    Recipe("fairface-mlp-age", "fairface", "MLP, age in FairFace's 9 bins",
           _fairface("mlp", ["age"], 50), (1_626_609, 1_626_609),
           (_age_corner(0.830, 0.36),), _FAIRFACE_NOTES),
    Recipe("fairface-mlp-race", "fairface", "MLP, race (7 groups)",
           _fairface("mlp", ["race"], 10), None, (), _FAIRFACE_NOTES),
    Recipe("fairface-small-cnn-gender", "fairface", "Small CNN (Conv 40 5×5 → pool → 100), gender",
           _fairface("small_cnn", ["gender"], 10), (785_342, 785_342), (), _FAIRFACE_NOTES),
    Recipe("fairface-small-cnn-age", "fairface", "Small CNN, age in 9 bins",
           _fairface("small_cnn", ["age"], 10), (786_049, 786_049),
           (_age_corner(0.869, 0.37),), _FAIRFACE_NOTES),
    Recipe("fairface-own-cnn-gender", "fairface", "Own CNN ([Conv relu → BN → pool] × 3), gender",
           _fairface("own_cnn", ["gender"], 10), (651_266, 650_818), (), _FAIRFACE_NOTES),
    Recipe("fairface-own-cnn-age", "fairface", "Own CNN, age in 9 bins",
           _fairface("own_cnn", ["age"], 10), (652_169, 651_721),
           (_age_corner(0.826, 0.41),), _FAIRFACE_NOTES),
    Recipe("fairface-multitask", "fairface", "Multi-task CNN: gender + age (losses summed)",
           _fairface("multitask_cnn", ["gender", "age"], 10), (106_315, 106_315),
           (Claim("age", "accuracy", "val", 0.412,
                  note="this one the notebook computed over all nine bins"),), _FAIRFACE_NOTES),
    Recipe("fairface-vae", "fairface", "Conv VAE, latent 10 (β 0.1 on the ½-KL)",
           {**_fairface("vae_notebook", [], 10), "scaling": "zscore", "binary_output": "sigmoid"},
           (104_341, 104_341), (),
           ("The notebook sampled z = μ + exp(logvar)·ε; ours samples with exp(½·logvar), the "
            "standard deviation, as the KL term it optimises assumes.",
            "A VAE scales pixels to [0, 1] itself (/255), not with min-max.",
            _FAIRFACE_NOTES[0])),
    # UTKFace CSV (48×48 gray, /255, 70/30, batch 128, 25 epochs)
    Recipe("utk-csv-age-decades", "utkface-csv", "Age CNN, 10 decade bins",
           {"data": {**_UTK_CSV, "age": "decades"}, "arch": "utk_csv_cnn", "heads": ["age"],
            "scaling": "unit", "batch_size": 128, "epochs": 25}, (38_298, 38_298),
           (Claim("age", "accuracy", "val", 0.518),), _UTK_CSV_NOTES),
    Recipe("utk-csv-age-life6", "utkface-csv", "Age CNN, 6 life stages",
           {"data": {**_UTK_CSV, "age": "life6"}, "arch": "utk_csv_cnn", "heads": ["age"],
            "scaling": "unit", "batch_size": 128, "epochs": 25}, None,
           (Claim("age", "accuracy", "val", 0.711, note="the notebook's stated goal: 70 %"),),
           ("Bins as the notebook's code: (0,10] (10,20] (20,40] (40,60] (60,90] (90,…].",
            *_UTK_CSV_NOTES)),
    Recipe("utk-csv-ethnicity", "utkface-csv", "Ethnicity CNN (Conv 2 → Conv 4 → 5 classes)",
           {"data": dict(_UTK_CSV), "arch": "utk_csv_cnn", "arch_params": _SMALL_CSV,
            "heads": ["race"], "scaling": "unit", "batch_size": 128, "epochs": 25},
           (2_981, 2_981), (), _UTK_CSV_NOTES),
    Recipe("utk-csv-gender", "utkface-csv", "Gender CNN (same trunk → 1 sigmoid)",
           {"data": dict(_UTK_CSV), "arch": "utk_csv_cnn", "arch_params": _SMALL_CSV,
            "heads": ["gender"], "scaling": "unit", "batch_size": 128, "epochs": 25},
           (673, 673), (), _UTK_CSV_NOTES),
    # UTKFace 128×128 RGB
    Recipe("utk128-cnn4-gender-age", "utkface-128",
           "Own 4-conv CNN: gender (BCE) + age in years (MAE), summed 1:1",
           {"data": {"dataset": "utkface", "size": 128, "color": "rgb"}, "arch": "utk_cnn4",
            "heads": ["gender", "age"], "age_loss": "mae"}, None,
           (Claim("gender", "accuracy", "val", 0.758), Claim("age", "mae", "val", 9.77)),
           ("Counted 2,781,122 parameters (the notebook printed no total).",
            "Epochs, batch and split: FaceML's defaults (10, 64, 70/15/15).")),
    Recipe("utk128-vgg16-gender", "utkface-128",
           "VGG16 frozen (ImageNet) + GAP → Dense 256 → Dropout → sigmoid, gender",
           {"data": {"dataset": "utkface", "size": 128, "color": "rgb"}, "arch": "vgg16",
            "heads": ["gender"]}, (14_846_273, 131_585), (),
           ("Epochs, batch and split: FaceML's defaults (10, 64, 70/15/15).",)),
    # CelebA 224 RGB
    Recipe("celeba-vgg16-sweep", "celeba",
           "VGG16 frozen + bare 2-unit softmax: lr × batch grid",
           {"data": dict(_CELEBA), "arch": "vgg16", "arch_params": _VGG_BARE,
            "heads": ["gender"], "binary_output": "softmax2", "lr": 1e-4, "batch_size": 64,
            "epochs": 12}, None,
           (Claim("gender", "accuracy", "val", None,
                  note="every run of the notebook's grid logged 1500 steps an epoch whatever "
                       "the batch size (a fixed steps_per_epoch), so each saw a different "
                       "number of faces and its batch-size axis never varied"),),
           (*_CELEBA_NOTES, "Each cell trains 12 epochs, as the final run."),
           grid={"lr": [1e-2, 1e-3, 1e-4], "batch_size": [8, 16, 32, 64]}),
    Recipe("celeba-vgg16-final", "celeba",
           "VGG16 frozen + bare 2-unit softmax: final lr 1e-4, batch 64, 12 epochs",
           {"data": dict(_CELEBA), "arch": "vgg16", "arch_params": _VGG_BARE,
            "heads": ["gender"], "binary_output": "softmax2", "lr": 1e-4, "batch_size": 64,
            "epochs": 12}, None, (Claim("gender", "accuracy", "test", 0.933),), _CELEBA_NOTES),
    # class-per-folder gender, 100×100 RGB
    Recipe("gender-folder-baseline", "gender-folder",
           "Baseline CNN (stride-1 pools, Dense 64, sigmoid)",
           {"data": dict(_FOLDER), "arch": "gender_baseline", "heads": ["gender"]},
           (9_050_961, 9_050_961), (), _FOLDER_NOTES, labels=_FOLDER_LABELS),
    Recipe("gender-folder-baseline-aug", "gender-folder", "Baseline CNN with augmentation",
           {"data": dict(_FOLDER), "arch": "gender_baseline", "heads": ["gender"],
            "augmentation": ["flip", "rotation", "zoom"]}, (9_050_961, 9_050_961), (),
           ("Augmentation: flip, rotation and zoom (FaceML's strengths).", *_FOLDER_NOTES),
           labels=_FOLDER_LABELS),
    Recipe("gender-folder-vgg16-fc", "gender-folder",
           "VGG16 frozen + GAP → Dense 512 → Dense 256 (dropout 0.5) → sigmoid",
           {"data": dict(_FOLDER), "arch": "vgg16", "arch_params": _VGG_FC,
            "heads": ["gender"]}, None, (),
           ("The notebook asked for 'as many FC layers as you like': two here.", *_FOLDER_NOTES),
           labels=_FOLDER_LABELS),
    Recipe("gender-folder-vgg16-other-set", "gender-folder",
           "The VGG16 model evaluated on a different class-per-folder set",
           {"data": dict(_FOLDER), "arch": "vgg16", "arch_params": _VGG_FC,
            "heads": ["gender"]}, None, (), _FOLDER_NOTES,
           evaluate="Train as gender-folder-vgg16-fc (the same run), then evaluate it on the "
                    "other set: python -m faceml evaluate RUN_ID --dataset folder --path "
                    "OTHER_SET --split all (gender-named folders map to the same classes).",
           labels=_FOLDER_LABELS),
)

_BY_NAME = {r.name: r for r in RECIPES}


def names() -> list[str]:
    return [r.name for r in RECIPES]


def get(name: str) -> Recipe:
    """The recipe called ``name``; ConfigError listing the names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; known: {', '.join(names())}") from None


def by_notebook() -> dict[str, list[Recipe]]:
    out: dict[str, list[Recipe]] = {nb: [] for nb in NOTEBOOKS}
    for r in RECIPES:
        out[r.notebook].append(r)
    return out


def sizes(recipe: Recipe):
    """The recipe's model size (:class:`~faceml.modeling.sizing.ModelSize`) at its own input,
    counted without training, data or weight downloads."""
    from faceml.modeling.sizing import model_size

    return model_size(recipe.config(), labels=recipe.sizing_labels())


def describe(recipe: Recipe, with_size: bool = True) -> dict:
    """The JSON of ``recipe list``: name, notebook, title, dataset, params, claimed."""
    out = {"name": recipe.name, "notebook": recipe.notebook, "title": recipe.title,
           "dataset": recipe.dataset}
    if with_size:
        s = sizes(recipe)
        out["params"] = {"total": s.total, "trainable": s.trainable}
    out["notebook_params"] = (None if recipe.params is None else
                              {"total": recipe.params[0], "trainable": recipe.params[1]})
    out["claimed"] = [c.to_dict() for c in recipe.claims]
    return out


def require_data(cfg: TrainConfig) -> None:
    """DataError naming the dataset, where it was looked for and ``--path`` when the dataset
    is not on disk; for ``holdout="official"`` FairFace without its val CSV, one suggesting
    ``--split 0.8,0.1,0.1``."""
    from faceml import data as datasets

    d = cfg.data
    adapter = datasets.get(d.dataset)
    if not adapter.needs_path:
        return
    where = adapter.resolve_path(d.path)
    if where is None or not adapter.found(d.path):
        looked = f"at {where}" if where is not None else "nowhere (it has no default location)"
        raise DataError(f"the {d.dataset} dataset is not on disk: looked {looked}; give its "
                        "location with --path")
    if d.dataset == "fairface" and d.holdout == "official":
        from faceml.data.fairface import CSV_NAMES

        if not (where / CSV_NAMES["val"]).is_file():
            raise DataError(f"this FairFace copy ({where}) has no {CSV_NAMES['val']}, so there "
                            "is no official validation split; carve one from train with "
                            "--split 0.8,0.1,0.1")


def _without_overrides(canonical: dict, grid_keys=()) -> dict:
    d = copy.deepcopy(canonical)
    for path in (*_OVERRIDE_KEYS, *((k,) for k in grid_keys)):
        node = d
        for k in path[:-1]:
            node = node.get(k, {})
        node.pop(path[-1], None)
    return d


def overrides_of(recipe: Recipe, canonical: dict) -> list[str] | None:
    """How a run's canonical config departs from the recipe: a list of allowed overrides
    (``["epochs 1", "split 0.8,0.1,0.1"]``, empty for the recipe itself), or None when it is
    not a run of this recipe."""
    mine = recipe.config().canonical()
    if _without_overrides(mine, recipe.grid) != _without_overrides(canonical, recipe.grid):
        return None
    out = []
    data, rdata = canonical.get("data", {}), mine["data"]
    if data.get("path") != rdata.get("path"):
        out.append(f"path {data.get('path')}")
    if canonical.get("epochs") != mine["epochs"]:
        out.append(f"epochs {canonical.get('epochs')}")
    if data.get("fraction") != rdata["fraction"]:
        out.append(f"fraction {data.get('fraction'):g}")
    if data.get("split") != rdata["split"] or data.get("holdout", "carve") != \
            rdata.get("holdout", "carve"):
        split = ",".join(f"{float(v):g}" for v in data.get("split") or [])
        out.append(f"split {split} ({data.get('holdout', 'carve')} validation)")
    for k in recipe.grid:
        out.append(f"{k} {canonical.get(k):g}" if isinstance(canonical.get(k), float)
                   else f"{k} {canonical.get(k)}")
    if canonical.get("repeat"):
        out.append(f"repeat {canonical['repeat']}")
    return out


def matching_runs(recipe: Recipe, store) -> list[tuple]:
    """``[(run, overrides)]``: the store's runs of this recipe, newest first."""
    out = []
    for run in store.list():
        try:
            over = overrides_of(recipe, run.config)
        except (FaceMLError, OSError, ValueError, TypeError, AttributeError):
            continue  # a damaged run is not one of ours
        if over is not None:
            out.append((run, over))
    return out


def figures(recipe: Recipe) -> tuple[Claim, ...]:
    """What to compare: the notebook's claims, or (where it reported none) the validation
    figure of the recipe's first head (accuracy, or MAE for years) as an empty claim."""
    if recipe.claims:
        return recipe.claims
    cfg = recipe.config()
    if not cfg.kind.uses_heads:
        return ()
    head = cfg.heads[0]
    spec = recipe.sizing_labels().get(head)
    metric = "mae" if spec is not None and not spec.is_categorical else "accuracy"
    return (Claim(head, metric, "val", None),)


def ours(run, claim: Claim) -> float | None:
    """The run's own figure for ``claim`` (its stored metrics), or None when it has none."""
    try:
        split = run.metrics().get(claim.split) or {}
        if claim.head is None:
            value = split.get(claim.metric)
        else:
            value = ((split.get("heads") or {}).get(claim.head) or {}).get(claim.metric)
    except (FaceMLError, ValueError, TypeError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None
