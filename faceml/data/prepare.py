"""From a dataset to arrays a model trains on: sample, decode (cached), bin ages, split.

    opts = PrepOptions(dataset="synthetic", size=64, color="rgb")
    prep = prepare(opts, progress=lambda done, total: ...)
    x_train = prep.x[prep.split_index("train")]

Splits are stratified and seeded; where a dataset has an official split it is honoured and only
the missing parts are carved out of its training part (``split`` fractions; a test fraction of 0
makes no test split). ``holdout="official"`` makes the official held-out split the validation
set and carves nothing else unless a test fraction is asked for. Nothing here looks at
validation or test pixels to fit anything: scaling statistics (:meth:`Prepared.scaling`) and
regression target statistics (:meth:`Prepared.heads`) come from the training split only.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight

from faceml import data as datasets
from faceml import hosting
from faceml.data.cache import ArrayCache, make_key
from faceml.data.ages import AGE_MODES, age_bins, bin_ages
from faceml.data.base import NATIVE_BOX, SPLITS, BadItem, LabelSpec, Progress, check_color
from faceml.errors import ConfigError, DataError, FaceMLError
from faceml.data.heads import HeadSpec, categorical_kind
from faceml.data import multi

SCALINGS = ("zscore", "minmax", "unit")
"""How a model scales raw pixels (``TrainConfig.scaling``), always fitted on the training split:
``zscore`` per channel (mean, std), ``minmax`` per pixel (``(x - min) / (max - min)``, as
scikit-learn's ``MinMaxScaler`` on flattened pixels; a constant pixel gets scale 1), ``unit``
``x / 255``."""
DEFAULT_SPLIT = (0.70, 0.15, 0.15)
OFFICIAL_SPLIT = (1.0, 0.0, 0.0)
FRAMINGS = ("native", "face")
"""How each image is framed: ``native`` (as the dataset ships it) or ``face`` (centre-cropped to
the project's face box, each adapter's :attr:`~faceml.data.base.DatasetAdapter.face_box`: the
crop the Predict page's detector hands a model). Several datasets default to ``face``."""
HOLDOUTS = ("carve", "official")
"""Where validation faces come from: ``carve`` (carved out of train where the dataset has no
official validation split) or ``official`` (the dataset's official held-out split, FairFace's
val or a class-per-folder set's test, is the validation set; train keeps every official train
face, and only a test fraction asked for is carved)."""


def pixel_minmax(x: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel minimum and range (max - min; 1 where a pixel is constant, as scikit-learn's
    ``MinMaxScaler``) of uint8 images ``(n, h, w, c)``, as float64 ``(h, w, c)`` arrays."""
    if len(x) == 0:
        raise ValueError("no training images to fit scaling statistics on")
    lo = np.full(x.shape[1:], 255, dtype=np.uint8)
    hi = np.zeros(x.shape[1:], dtype=np.uint8)
    for i in range(0, len(x), batch):
        b = x[i:i + batch]
        lo = np.minimum(lo, b.min(0))
        hi = np.maximum(hi, b.max(0))
    rng = hi.astype(np.float64) - lo
    return lo.astype(np.float64), np.where(rng == 0, 1.0, rng)


def channel_stats(x: np.ndarray, batch: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images ``(n, h, w, c)``, in float64,
    batched so 20k faces do not need a float copy of the whole array."""
    c = x.shape[-1]
    total = np.zeros(c)
    sq = np.zeros(c)
    count = 0
    for lo in range(0, len(x), batch):
        b = x[lo:lo + batch].reshape(-1, c).astype(np.float64)
        total += b.sum(0)
        sq += (b * b).sum(0)
        count += len(b)
    if count == 0:
        raise ValueError("no training images to fit scaling statistics on")
    mean = total / count
    var = np.maximum(sq / count - mean * mean, 0.0)
    return mean.tolist(), np.sqrt(var).tolist()


# --- options --------------------------------------------------------------------------------
@dataclass
class PrepOptions:
    """The data of a run. ``dataset`` names one dataset, or several (a list, or names joined by
    commas: ``"utkface,fairface"``; kept as that comma text, so everything that shows a run's
    dataset shows them all): see :mod:`faceml.data.multi`. With several, ``path`` and
    ``dataset_options`` are per dataset (``{"utkface": "/p1", "fairface": "/p2"}``; a dataset
    left out is read from its default location / with its default options)."""

    dataset: str = "synthetic"
    path: str | dict | None = None
    dataset_options: dict = field(default_factory=dict)  # e.g. synthetic: n, seed, label_noise
    size: int = 64
    color: str = "rgb"
    fraction: float = 1.0
    seed: int = 0
    split: tuple[float, float, float] | None = None  # None: DEFAULT_SPLIT, or OFFICIAL_SPLIT
    age: str = "years"  # "years" or a scheme in AGE_SCHEMES or "custom"
    age_edges: list[int] | None = None
    stratify: str | None = None  # label to stratify on; default: the first categorical label
    holdout: str = "carve"  # see HOLDOUTS; omitted from canonical() when "carve"
    framing: str | None = None  # see FRAMINGS; None: "face" for several datasets, else "native"

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str):  # a list of names
            self.dataset = ",".join(str(d).strip() for d in self.dataset)
        names = self.datasets
        if len(names) == 1:
            self.dataset = names[0]
            if isinstance(self.path, dict):  # {"utkface": "/p"} for one dataset: its path
                self.path = self.path.get(names[0])
        if self.framing is None:
            self.framing = "face" if self.multi else "native"
        if self.split is None:  # the default of the holdout mode: nothing carved for official
            self.split = OFFICIAL_SPLIT if self.holdout == "official" else DEFAULT_SPLIT
        else:
            self.split = tuple(self.split)

    @property
    def datasets(self) -> list[str]:
        """The dataset names (one, or several in the order given)."""
        return [d.strip() for d in str(self.dataset).split(",") if d.strip()]

    @property
    def multi(self) -> bool:
        """Whether this names several datasets (:mod:`faceml.data.multi`)."""
        return len(self.datasets) > 1

    def part(self, name: str) -> PrepOptions:
        """The options of one dataset of several: its own path and options, the shared size,
        colour, sample fraction, seed and split, ages in years (binned after merging)."""
        path = self.path.get(name) if isinstance(self.path, dict) else None
        opts = self.dataset_options.get(name) or {}
        return PrepOptions(dataset=name, path=path, dataset_options=dict(opts), size=self.size,
                           color=self.color, fraction=self.fraction, seed=self.seed,
                           split=self.split, stratify=self.stratify, holdout=self.holdout,
                           framing=self.framing)

    def validate(self) -> None:
        if self.multi:
            _validate_several(self)
        if self.framing not in FRAMINGS:
            raise ConfigError(f"framing must be {' or '.join(map(repr, FRAMINGS))}, not "
                              f"{self.framing!r}")
        check_color(self.color)
        if not 8 <= int(self.size) <= 512:
            raise ConfigError(f"image size must be between 8 and 512 pixels, not {self.size}")
        if not 0 < float(self.fraction) <= 1:
            raise ConfigError(f"sample fraction must be in (0, 1], not {self.fraction}")
        s = [float(v) for v in self.split]
        if len(s) != 3 or min(s) < 0 or s[0] <= 0 or abs(sum(s) - 1) > 1e-6:
            raise ConfigError(f"split must be three fractions (train, val, test) summing to 1, "
                              f"e.g. 0.7,0.3,0 (no test split); not {s}")
        if self.holdout not in HOLDOUTS:
            raise ConfigError(f"validation split must be 'carve' or 'official', not "
                              f"{self.holdout!r}")
        if self.age not in AGE_MODES:
            raise ConfigError(
                f"unknown age mode {self.age!r}; choose one of {', '.join(AGE_MODES)}")
        if self.age == "custom":
            age_bins("custom", self.age_edges)

    def canonical(self) -> dict:
        """A JSON-able dict that identifies the prepared data (part of a run's id)."""
        d = asdict(self)
        d["split"] = [round(float(v), 6) for v in self.split]
        d["fraction"] = float(self.fraction)
        d["size"] = int(self.size)
        if self.age != "custom":
            d["age_edges"] = None
        if self.holdout == "carve":  # the default: run ids made before it existed hold
            d.pop("holdout")
        if self.framing == ("face" if self.multi else "native"):  # the default: ids hold
            d.pop("framing")
        if isinstance(self.path, dict):
            d["path"] = {k: v for k, v in sorted(self.path.items()) if v not in (None, "")}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PrepOptions:
        d = dict(d)
        d["split"] = tuple(d["split"]) if d.get("split") is not None else None
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def labels_for(opts: PrepOptions) -> dict[str, LabelSpec]:
    """The labels a model can be trained on with these options (age binned when asked).

    Cheap: no pixels are decoded; a dataset whose classes are only known after a scan (a
    class-per-folder set) is scanned. Several datasets: their merged label space
    (:func:`faceml.data.multi.merge_labels`; ConfigError for labels that cannot be
    reconciled)."""
    if opts.multi:
        return multi.merge_labels({d: labels_for(opts.part(d)) for d in opts.datasets},
                                  opts.age, opts.age_edges)
    hosting.current().dataset_path(opts.dataset, opts.path)  # hosted: the allow-list only
    adapter = datasets.get(opts.dataset)
    labels = dict(adapter.label_specs()) or dict(
        adapter.scan(opts.path, **opts.dataset_options).labels)
    return binned_labels(opts, labels)


def binned_labels(opts: PrepOptions, labels: dict[str, LabelSpec]) -> dict[str, LabelSpec]:
    """``labels`` with a years age label binned as ``opts.age`` asks (no data read)."""
    labels = dict(labels)
    age = labels.get("age")
    if age is not None and age.kind == "years" and opts.age != "years":
        labels["age"] = _binned_age_spec(opts)
    return labels


def _validate_several(opts: PrepOptions) -> None:
    names = opts.datasets
    for d in names:
        datasets.get(d)  # unknown: a DataError naming the known ones
    dup = sorted({d for d in names if names.count(d) > 1})
    if dup:
        raise ConfigError(f"dataset {dup[0]!r} is named twice")
    if opts.path not in (None, "") and not isinstance(opts.path, dict):
        raise ConfigError(f"several datasets need a path each, e.g. {names[0]}=/data/"
                          f"{names[0]},{names[1]}=/data/{names[1]}; not one path")
    for what, given in (("path", opts.path or {}), ("options", opts.dataset_options or {})):
        stray = sorted(set(given) - set(names))
        if stray:
            raise ConfigError(f"a {what} is given for {stray[0]!r}, which is not among the "
                              f"datasets {', '.join(names)}")
    bad = [d for d, o in (opts.dataset_options or {}).items() if not isinstance(o, dict)]
    if bad:
        raise ConfigError(f"with several datasets, options are given per dataset, e.g. "
                          f"{bad[0]}={{\"n\": 300}}")
    missing = [d for d in names if not datasets.get(d).found(opts.part(d).path)]
    if missing:
        raise DataError(f"not on disk: {', '.join(missing)} (of the datasets "
                        f"{', '.join(names)}); nothing is prepared or trained")


def _binned_age_spec(opts: PrepOptions) -> LabelSpec:
    names = age_bins(opts.age, opts.age_edges)[1]
    return LabelSpec("age", "categorical", tuple(names), f"age in bins ({opts.age})")


# --- the prepared data ----------------------------------------------------------------------
@dataclass
class Prepared:
    options: PrepOptions
    x: np.ndarray  # uint8 (n, size, size, c)
    frame: pd.DataFrame  # source, labels (age binned if asked; age_years kept), split
    labels: dict[str, LabelSpec]
    bad: list[BadItem]
    warnings: list[str]
    cache_hit: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """What the adapter changed on the way in (:attr:`faceml.data.base.Scan.notes`)."""

    @property
    def dataset(self) -> str:
        return self.options.dataset

    @property
    def intervals(self) -> bool:
        """Whether age targets are intervals (several datasets, one of them with age bins)."""
        return all(c in self.frame.columns for c in multi.INTERVAL_COLUMNS)

    def split_index(self, split: str) -> np.ndarray:
        if split == "all":
            return np.arange(len(self.frame))
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose train, val, test or all")
        return np.flatnonzero(self.frame["split"].to_numpy() == split)

    def counts(self) -> pd.DataFrame:
        """Faces per class per split for every categorical label (long format)."""
        rows = []
        for name, spec in self.labels.items():
            if not spec.is_categorical:
                continue
            ct = pd.crosstab(self.frame[name], self.frame["split"])
            for cls in spec.classes:
                for sp in SPLITS:
                    n = int(ct.at[cls, sp]) if cls in ct.index and sp in ct.columns else 0
                    rows.append({"label": name, "class": cls, "split": sp, "count": n})
        return pd.DataFrame(rows, columns=["label", "class", "split", "count"])

    def scaling(self, mode: str = "zscore") -> tuple:
        """``(offset, scale)`` such that a model computes ``(x - offset) / scale``, fitted on
        the *training* split only (:data:`SCALINGS`): per-channel mean and std (``zscore``),
        per-pixel min and range as ``(size, size, c)`` arrays (``minmax``), or 0 and 255
        (``unit``)."""
        if mode not in SCALINGS:
            raise ConfigError(f"unknown scaling {mode!r}; choose {', '.join(SCALINGS)}")
        if mode == "unit":
            return [0.0], [255.0]
        train = self.x[self.split_index("train")]
        return channel_stats(train) if mode == "zscore" else pixel_minmax(train)

    def heads(self, names: list[str], weights: dict[str, float] | None = None,
              age_loss: str = "mae") -> list[HeadSpec]:
        """Head specs for the chosen labels; regression targets are scaled by train statistics."""
        if not names:
            raise ConfigError("choose at least one label to predict")
        weights = weights or {}
        out = []
        for n in names:
            if n not in self.labels:
                raise ConfigError(f"dataset {self.dataset!r} has no label {n!r}; it has "
                                  f"{', '.join(self.labels)}")
            spec = self.labels[n]
            w = float(weights.get(n, 1.0))
            if spec.kind == "years":
                if age_loss not in ("mae", "huber"):
                    raise ConfigError(f"age loss must be 'mae' or 'huber', not {age_loss!r}")
                y = self.frame[n].to_numpy(dtype=float)[self.split_index("train")]
                y = y[~np.isnan(y)]  # several datasets: faces without an age
                if not len(y):
                    raise ConfigError(f"no training face has the label {n!r}")
                loss = f"interval_{age_loss}" if n == "age" and self.intervals else age_loss
                out.append(HeadSpec(n, "regression", [], loss, w,
                                    float(y.mean()), float(max(y.std(), 1e-3))))
            else:
                out.append(HeadSpec(n, categorical_kind(spec.classes), list(spec.classes), "",
                                    w))
        return out

    def targets(self, heads: list[HeadSpec], index: np.ndarray) -> dict[str, np.ndarray]:
        """True values: class indices (int32; -1 where a face has no such label, which only
        several datasets give) or years (float32; NaN where unknown)."""
        out = {}
        sub = self.frame.iloc[index]
        for h in heads:
            if h.kind == "regression":
                out[h.name] = sub[h.name].to_numpy(dtype="float32")
            else:
                codes = pd.Categorical(sub[h.name], categories=h.classes).codes
                if ((codes < 0) & sub[h.name].notna().to_numpy()).any():
                    raise DataError(f"label {h.name!r} has values outside {h.classes}")
                out[h.name] = codes.astype("int32")
        return out

    def labelled(self, heads: list[HeadSpec], index: np.ndarray) -> dict[str, np.ndarray]:
        """Per head, which of the faces at ``index`` have its label (bool)."""
        t = self.targets(heads, index)
        return {h.name: (~np.isnan(t[h.name]) if h.kind == "regression" else t[h.name] >= 0)
                for h in heads}

    def fit_targets(self, heads: list[HeadSpec], index: np.ndarray, balanced: bool = False
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """``(y, sample_weight)`` for ``model.fit``: a face without a head's label gets a
        placeholder target and weight 0, so it adds nothing to that head's loss; an interval
        age head's targets are ``(n, 2)`` ``[lo, hi]`` years. ``balanced``: class weights
        (:meth:`sample_weights`). The weights are None when every face has every label and
        nothing is balanced (a single dataset: exactly as before)."""
        y = self.targets(heads, index)
        have = self.labelled(heads, index)
        sub = self.frame.iloc[index]
        for h in heads:
            if h.loss.startswith("interval_"):
                y[h.name] = sub[list(multi.INTERVAL_COLUMNS)].to_numpy(dtype="float32")
                y[h.name][~have[h.name]] = 0.0
            elif h.kind == "regression":
                y[h.name] = np.where(have[h.name], y[h.name], 0.0).astype("float32")
            else:
                y[h.name] = np.maximum(y[h.name], 0).astype("int32")
        if balanced:
            return y, self.sample_weights(heads, index)
        if all(m.all() for m in have.values()):
            return y, None
        return y, {n: m.astype("float32") for n, m in have.items()}

    def sample_weights(self, heads: list[HeadSpec], index: np.ndarray) -> dict[str, np.ndarray]:
        """'Balanced' class weights per categorical head as sample weights (scikit-learn),
        over the faces that have the label; 0 for a face without it."""
        t = self.targets(heads, index)
        have = self.labelled(heads, index)
        out = {}
        for h in heads:
            w = np.zeros(len(index), "float32")
            m = have[h.name]
            if h.kind != "regression" and m.any():
                w[m] = compute_sample_weight("balanced", t[h.name][m])
            else:
                w[m] = 1.0
            out[h.name] = w
        return out


# --- preparing ------------------------------------------------------------------------------
def _strata(frame: pd.DataFrame, label: str | None, min_count: int, warnings: list[str]):
    """Stratification labels; classes too rare to stratify are pooled (and reported)."""
    if label is None:
        return None
    y = frame[label].astype(str).to_numpy()
    vals, counts = np.unique(y, return_counts=True)
    rare = vals[counts < min_count]
    if len(rare):
        for v, c in zip(vals, counts):
            if c < min_count:
                warnings.append(f"class {v!r} of label {label!r} has only {c} image(s): too few "
                                "to stratify on; it is split at random")
        y = np.where(np.isin(y, rare), "__rare__", y)
        if (y == "__rare__").sum() < min_count:
            y = np.where(y == "__rare__", vals[counts.argmax()], y)
    if len(np.unique(y)) < 2:
        return None
    return y


def _official_holdout(opts: PrepOptions, frame: pd.DataFrame) -> list[str]:
    """The official held-out splits (``val``, ``test``) the dataset has; DataError if none."""
    official = frame["split"] if "split" in frame.columns else pd.Series([], dtype=object)
    held = [s for s in ("val", "test") if (official == s).any()]
    if not held:
        raise DataError(f"{opts.dataset} has no official held-out split here to validate on; "
                        "use the validation split carved from train (carve)")
    return held


def _split(frame: pd.DataFrame, opts: PrepOptions, strat_label: str | None,
           warnings: list[str]) -> np.ndarray:
    """The split of every row: official where the dataset has one, else stratified and seeded."""
    n = len(frame)
    split = np.full(n, "", dtype=object)
    official = frame["split"].to_numpy(dtype=object) if "split" in frame.columns else split
    known = np.isin(official, SPLITS)
    split[known] = official[known]
    if opts.holdout == "official":
        held = _official_holdout(opts, frame)
        if held == ["test"]:  # a train/test dataset: its test faces are the validation set
            split[split == "test"] = "val"
    train_pool = np.flatnonzero(~known | (official == "train"))
    fr_train, fr_val, fr_test = (float(v) for v in opts.split)
    need = [s for s in ("val", "test") if not (split == s).any()]
    fracs = {"val": fr_val, "test": fr_test}
    idx = train_pool
    split[idx] = "train"
    for i, s in enumerate(need):
        if fracs[s] <= 0 or len(idx) < 2:
            continue
        remaining = fr_train + sum(fracs[t] for t in need[i:])
        take = fracs[s] / remaining
        y = _strata(frame.iloc[idx], strat_label, 2, warnings)
        try:
            keep, carved = train_test_split(idx, test_size=take, random_state=opts.seed,
                                            stratify=y)
        except ValueError:
            warnings.append(f"could not stratify the {s} split on {strat_label!r}; "
                            "it is split at random")
            keep, carved = train_test_split(idx, test_size=take, random_state=opts.seed)
        split[carved] = s
        idx = keep
    return split


def prepare(opts: PrepOptions, progress: Progress | None = None,
            cache: ArrayCache | None = None) -> Prepared:
    """Scan, sample, decode (through the on-disk cache), bin ages and split."""
    policy = hosting.current()
    try:
        if opts.multi:
            return _prepare_several(opts, policy, progress, cache)
        return _prepare(opts, policy, progress, cache)
    except FaceMLError as e:  # hosted: a message never names a server path
        if not policy.hosted:
            raise
        raise type(e)(policy.redact(str(e))) from None


def _prepare(opts: PrepOptions, policy: hosting.HostingPolicy, progress: Progress | None,
             cache: ArrayCache | None) -> Prepared:
    t0 = time.perf_counter()
    opts.validate()
    path = policy.dataset_path(opts.dataset, opts.path)  # hosted: the allow-list only
    adapter = datasets.get(opts.dataset)
    scan = adapter.scan(path, **opts.dataset_options)
    labels = dict(scan.labels)
    frame = scan.frame.reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{opts.dataset}: no usable faces found"
                        + (f" ({len(scan.bad)} skipped)" if scan.bad else ""))
    if opts.holdout == "official":
        _official_holdout(opts, frame)  # before decoding anything
    warnings: list[str] = []
    strat = opts.stratify or next((n for n, s in labels.items() if s.is_categorical), None)
    if strat is not None and strat not in labels:
        raise ConfigError(f"cannot stratify on {strat!r}: dataset has {', '.join(labels)}")
    if strat is not None and not labels[strat].is_categorical:
        strat = None

    # sample a fraction (stratified, seeded) before decoding anything; a hosted server caps it
    keep = max(2, int(round(len(frame) * opts.fraction)))
    if policy.check_faces(keep) < keep:
        warnings.append(f"this server uses at most {policy.caps.faces:,} faces: a stratified, "
                        f"seeded sample of {policy.caps.faces:,} of the {keep:,} asked for")
        keep = policy.caps.faces
    if keep < len(frame):
        y = _strata(frame, strat, 2, [])
        try:
            idx, _ = train_test_split(np.arange(len(frame)), train_size=keep,
                                      random_state=opts.seed, stratify=y)
        except ValueError:
            idx, _ = train_test_split(np.arange(len(frame)), train_size=keep,
                                      random_state=opts.seed)
        frame = frame.iloc[np.sort(idx)].reset_index(drop=True)

    cache = cache or ArrayCache()
    box = adapter.face_box if opts.framing == "face" else NATIVE_BOX
    key = make_key(opts.dataset, scan.fingerprint(frame), opts.size, opts.color,
                   *([list(box)] if box != NATIVE_BOX else []))  # native: the keys as before
    hit = cache.get(key)
    bad = list(scan.bad)
    if hit is not None:
        x, kept, meta = hit
        bad += [BadItem(**b) for b in meta.get("bad_read", [])]
        if progress:
            progress(1, 1)
    else:
        x, read_bad = adapter.read(scan, frame, opts.size, opts.color, progress,
                                   **({"face_box": box} if box != NATIVE_BOX else {}))
        bad_sources = {b.source for b in read_bad}
        ok = ~frame["source"].isin(bad_sources).to_numpy()
        x = np.ascontiguousarray(x[ok])
        kept = frame[[c for c in frame.columns if not c.startswith("_")]][ok].reset_index(drop=True)
        cache.put(key, x, kept, {"bad_read": [b.__dict__ for b in read_bad],
                                 "dataset": opts.dataset, "size": opts.size, "color": opts.color,
                                 "face_box": list(box)})
        bad += read_bad
    frame = kept.reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(f"{opts.dataset}: none of the {len(bad)} images could be read")

    # ages: years, or bins with a named scheme
    age = labels.get("age")
    if age is not None and age.kind == "years":
        frame["age_years"] = frame["age"].astype(float)
        if opts.age != "years":
            edges, names = age_bins(opts.age, opts.age_edges)
            frame["age"] = [names[i] for i in bin_ages(frame["age_years"], opts.age, edges)]
            labels["age"] = _binned_age_spec(opts)
    elif age is not None and opts.age not in ("years",):
        warnings.append(f"{opts.dataset} has age only as classes {list(age.classes)}; "
                        f"the age scheme {opts.age!r} is not applied")

    if strat == "age" and labels["age"].kind == "years":
        strat = None
    frame["split"] = _split(frame, opts, strat, warnings)
    return Prepared(opts, x, frame, labels, bad, warnings, hit is not None,
                    time.perf_counter() - t0, notes=list(scan.notes))


def _prepare_several(opts: PrepOptions, policy: hosting.HostingPolicy,
                     progress: Progress | None, cache: ArrayCache | None) -> Prepared:
    """Each dataset prepared on its own (scan, cache, sample, seeded stratified split), then
    stacked in the merged label space (:mod:`faceml.data.multi`)."""
    t0 = time.perf_counter()
    opts.validate()
    names = opts.datasets
    merged = labels_for(opts)
    parts = []
    for i, d in enumerate(names):
        part = _prepare(opts.part(d), policy, _sub_progress(progress, i, len(names)), cache)
        parts.append(part)
    frames = [multi.common_frame(d, p.frame, p.labels, merged, opts.age, opts.age_edges)
              for d, p in zip(names, parts)]
    frame = pd.concat(frames, ignore_index=True)
    x = np.concatenate([p.x for p in parts])
    bad = [BadItem(f"{d}/{b.source}", b.reason) for d, p in zip(names, parts) for b in p.bad]
    warnings = [f"{d}: {w}" for d, p in zip(names, parts) for w in p.warnings]
    notes = [f"{d}: {n}" for d, p in zip(names, parts) for n in p.notes]
    return Prepared(opts, x, frame, merged, bad, warnings, all(p.cache_hit for p in parts),
                    time.perf_counter() - t0, notes=notes)


def _sub_progress(progress: Progress | None, i: int, n: int) -> Progress | None:
    if progress is None:
        return None
    return lambda done, total: progress(i * 1000 + (1000 * done // max(total, 1)), n * 1000)
