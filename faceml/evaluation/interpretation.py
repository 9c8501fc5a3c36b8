"""Every number about one run's predictions on one split, computed when first asked for
(fastai-style ``Interpretation``).

Two constructors:

    Interpretation.from_run(run, "test")        # the predictions a run stored, no model needed
    Interpretation.from_frame(frame, heads, dataset="utkface", split="test")

Making one checks the frame (one split, a dataset, heads with their columns) and computes
nothing else: a head's metrics, ROC curves, breakdowns... are computed on first use and kept, so
looking at one head never computes another's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd

from faceml.data.heads import HeadSpec
from faceml.errors import FaceMLError
from faceml.evaluation.classification import classification_metrics, roc_curves, threshold_metrics
from faceml.evaluation.groups import group_breakdown
from faceml.evaluation.losses import cell_members, top_losses
from faceml.evaluation.predictions import (
    MetricsInputError,
    check_frame,
    dataset_rows,
    frame_datasets,
    has_truth,
    heads_from_frame,
    resolve_head,
)
from faceml.evaluation.regression import regression_metrics
from faceml.evaluation.stored import (
    STORED_SPLITS,
    as_run,
    check_split,
    run_heads,
    stored_predictions,
)
from faceml.runs import Run

__all__ = ["Interpretation"]


def _num(x: Any) -> float | None:
    """A plain float for JSON, ``None`` for nan / missing."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


class PerHead(Mapping):
    """``{head name: value}`` computed on first lookup of each head, then kept.

    ``computed()`` names the heads computed so far."""

    def __init__(self, names: list[str], compute: Callable[[str], Any]):
        self._names = list(names)
        self._compute = compute
        self._done: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            if name not in self._names:
                raise KeyError(name)
            self._done[name] = self._compute(name)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def computed(self) -> list[str]:
        return [n for n in self._names if n in self._done]


class Interpretation:
    """Every number about one run's predictions on one split, computed when first asked for.

    Make one with :meth:`from_run` or :meth:`from_frame`. Attributes: ``frame`` (the whole
    predictions frame), ``frame_`` (this split's rows), ``n_``, ``splits_`` (all splits of the
    frame), ``heads``, ``dataset``, ``split``; ``metrics_`` (head -> classification or
    regression metrics dict) and ``roc_curves_`` (categorical head -> curves) are mappings that
    compute a head's entry on its first lookup. Every dict result carries ``dataset`` and
    ``split`` keys; every DataFrame result carries them in ``.attrs``.
    """

    def __init__(self, *, frame: pd.DataFrame, rows: pd.DataFrame, heads: list[HeadSpec],
                 dataset: str, split: str, splits: list[str]):
        """Not called directly: use :meth:`from_frame` or :meth:`from_run`."""
        self.frame = frame
        self.frame_ = rows
        self.heads = heads
        self.dataset = dataset
        self.split = split
        self.splits_ = splits
        self.n_ = int(len(rows))
        names = [h.name for h in heads]
        self.metrics_ = PerHead(names, self._metrics)
        self.roc_curves_ = PerHead([h.name for h in heads if h.kind != "regression"],
                                   lambda name: roc_curves(self.frame_, self.head(name)))

    # --- constructors ------------------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, heads: list[HeadSpec] | None = None, *,
                   dataset: str | None = None, split: str | None = None) -> Interpretation:
        """The numbers of a predictions frame (:mod:`faceml.evaluation.predictions`).

        ``heads``: the run's :class:`HeadSpec` (``None``: recovered from the frame's columns);
        ``split=None`` is allowed when the frame holds a single split; ``dataset=None`` reads
        ``frame.attrs["dataset"]``."""
        if not isinstance(frame, pd.DataFrame):
            raise MetricsInputError(f"expected a predictions DataFrame, got "
                                    f"{type(frame).__name__}")
        if len(frame) == 0:
            raise MetricsInputError("the predictions frame is empty (0 rows): nothing to "
                                    "evaluate")
        dataset = dataset if dataset is not None else frame.attrs.get("dataset")
        if not dataset:
            raise MetricsInputError("name the dataset these predictions come from (dataset=)")
        splits = (sorted(map(str, pd.unique(frame["split"].dropna())))
                  if "split" in frame.columns else [])
        if split is None:
            if len(splits) > 1:
                raise MetricsInputError(f"the predictions frame holds splits {splits}; "
                                        "pass split= to choose one")
            split = splits[0] if splits else "all"
            rows = frame
        else:
            rows = check_frame(frame, split)
        heads = list(heads) if heads is not None else heads_from_frame(frame)
        if not heads:
            raise MetricsInputError("the predictions frame holds no head columns (H_true)")
        heads = [h if isinstance(h, HeadSpec) else HeadSpec.from_dict(h) for h in heads]
        for h in heads:  # the columns are there (cheap); the numbers wait until asked for
            resolve_head(rows, h)
        return cls(frame=frame, rows=rows, heads=heads, dataset=str(dataset), split=str(split),
                   splits=splits)

    @classmethod
    def from_run(cls, run: Run | str, split: str = "test") -> Interpretation:
        """The numbers of a run's stored predictions on ``split`` (val or test), no model needed.

        The result's ``frame.attrs`` carry the run's data options (``data``) so galleries can
        find the images, ``notes``, and the ``checkpoint`` the predictions come from."""
        run = as_run(run)
        split = check_split(split, STORED_SPLITS + ("train", "all"))
        frame = stored_predictions(run)
        if frame is None:
            state = run.status().get("state", "queued")
            raise FaceMLError(f"run {run.id} has no stored predictions yet (it is {state}); "
                              "evaluate its last checkpoint instead")
        have = sorted(map(str, pd.unique(frame["split"].dropna())))
        if split not in have:
            raise FaceMLError(f"run {run.id} stored predictions for {', '.join(have)} only, "
                              f"not {split!r}; evaluate its model on that split instead")
        heads = run_heads(run, frame)
        if not heads:
            raise FaceMLError(f"run {run.id} has no heads to evaluate (a VAE?)")
        return cls.from_frame(frame, heads, dataset=frame.attrs.get("dataset") or None,
                              split=split)

    def for_split(self, split: str) -> Interpretation:
        """The same run's numbers on another split of the frame."""
        return Interpretation.from_frame(self.frame, self.heads, dataset=self.dataset,
                                         split=split)

    # --- naming every result -----------------------------------------------------------------

    def _named(self, d: dict) -> dict:
        return {"dataset": self.dataset, "split": self.split, **d}

    def _named_frame(self, df: pd.DataFrame, head: str) -> pd.DataFrame:
        df.attrs.update({"dataset": self.dataset, "split": self.split, "head": head})
        return df

    def _metrics(self, name: str) -> dict:
        h = self.head(name)
        m = (regression_metrics(self.frame_, h) if h.kind == "regression"
             else classification_metrics(self.frame_, h))
        return self._named(m)

    # --- the numbers -------------------------------------------------------------------------

    def head(self, head: HeadSpec | str) -> HeadSpec:
        """The :class:`HeadSpec` of a head of this interpretation, by name (or spec)."""
        name = head.name if isinstance(head, HeadSpec) else head
        for h in self.heads:
            if h.name == name:
                return h
        raise MetricsInputError(f"no head {name!r} in this interpretation "
                                f"({[h.name for h in self.heads]})")

    def metrics(self, head: HeadSpec | str) -> dict:
        """The head's classification or regression metrics (computed once)."""
        return self.metrics_[self.head(head).name]

    def summary(self) -> dict:
        """``{"dataset", "split", "n", "heads": {head: {accuracy, balanced_accuracy, f1_macro,
        auc} | {mae, rmse}}}``: JSON-ready (computes every head's metrics)."""
        heads = {}
        for h in self.heads:
            m = self.metrics_[h.name]
            if h.kind == "regression":
                heads[h.name] = {"mae": _num(m["mae"]), "rmse": _num(m["rmse"])}
            else:
                heads[h.name] = {k: _num(m[k]) for k in
                                 ("accuracy", "balanced_accuracy", "f1_macro", "auc")}
        return {"dataset": self.dataset, "split": self.split, "n": self.n_, "heads": heads}

    def by_dataset(self) -> dict[str, Interpretation]:
        """A run trained on several datasets: ``{dataset: Interpretation}`` of each one's faces
        of this split, with the heads it has labels for (as the engine stores
        ``metrics["by_dataset"]``); ``{}`` for predictions of one dataset."""
        out = {}
        for d in frame_datasets(self.frame_):
            sub = dataset_rows(self.frame_, d)
            heads = [h for h in self.heads if sub is not None and has_truth(sub, h)]
            if heads:
                out[d] = Interpretation.from_frame(sub, heads, dataset=d, split=self.split)
        return out

    def roc_curves(self, head: HeadSpec | str) -> dict:
        h = self.head(head)
        return self._named({"head": h.name, "curves": self.roc_curves_.get(h.name, {})})

    def confusion_matrix(self, head: HeadSpec | str) -> pd.DataFrame:
        """Counts, rows = true class, columns = predicted class, all classes in order."""
        h = self.head(head)
        if h.kind == "regression":
            raise MetricsInputError(f"head {h.name!r} is a regression head: no confusion matrix")
        m = self.metrics_[h.name]
        df = pd.DataFrame(m["confusion_matrix"], index=pd.Index(h.classes, name="true"),
                          columns=pd.Index(h.classes, name="predicted"))
        return self._named_frame(df, h.name)

    def classification_metrics(self, head: HeadSpec | str, threshold: float | None = None) -> dict:
        h = self.head(head)
        if threshold is None:
            return self.metrics_[h.name]
        return self._named(classification_metrics(self.frame_, h, threshold))

    def threshold_metrics(self, head: HeadSpec | str, threshold: float) -> dict:
        return self._named(threshold_metrics(self.frame_, self.head(head), threshold))

    def cell_members(self, head: HeadSpec | str, true_class: str, pred_class: str, *,
                     threshold: float | None = None) -> pd.DataFrame:
        h = self.head(head)
        return self._named_frame(cell_members(self.frame_, h, true_class, pred_class,
                                              threshold=threshold), h.name)

    def top_losses(self, head: HeadSpec | str, true_class: str | None = None,
                   pred_class: str | None = None, only_wrong: bool = True, *,
                   k: int | None = None, threshold: float | None = None) -> pd.DataFrame:
        h = self.head(head)
        return self._named_frame(top_losses(self.frame_, h, true_class, pred_class, only_wrong,
                                            k=k, threshold=threshold), h.name)

    def group_breakdown(self, head: HeadSpec | str, by: list[str], **kwargs) -> pd.DataFrame:
        h = self.head(head)
        return self._named_frame(group_breakdown(self.frame_, h, by, **kwargs), h.name)

    def __repr__(self) -> str:
        return (f"Interpretation(dataset={self.dataset!r}, split={self.split!r}, n={self.n_}, "
                f"heads={[h.name for h in self.heads]})")
