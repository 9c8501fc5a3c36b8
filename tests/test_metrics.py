"""faceml.evaluation (predictions frame, classification, regression, groups, Interpretation):
every number equals scikit-learn's own call on hand-made predictions."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from faceml.evaluation.predictions import heads_from_frame, predicted_classes, predictions_frame
from faceml.evaluation.classification import (
    classification_metrics,
    roc_curves,
    threshold_metrics,
    within_one_bin_accuracy,
)
from faceml.evaluation.losses import cell_members, top_losses
from faceml.evaluation.regression import regression_metrics
from faceml.evaluation.groups import (bootstrap_ci, bootstrap_metric_ci, group_breakdown,
                                      overall_intervals, wilson_interval)
from faceml.evaluation.interpretation import Interpretation
from faceml.data.heads import HeadSpec

GENDER = HeadSpec("gender", "binary", ["Male", "Female"])
RACE = HeadSpec("race", "multiclass", ["White", "Black", "Asian", "Indian"])
AGE = HeadSpec("age", "regression")
EVALUATION = Path(__file__).resolve().parents[1] / "faceml" / "evaluation"

# 10 hand-made binary predictions: P(Female) and the truth (1 = Female)
P10 = np.array([0.05, 0.15, 0.25, 0.28, 0.35, 0.45, 0.55, 0.65, 0.85, 0.95])
Y10 = np.array([0, 0, 1, 0, 0, 1, 0, 1, 1, 1])


def _proba_for(y_pred: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Softmax-like rows whose argmax is y_pred (0.6 on it, 0.4 spread at random elsewhere)."""
    rng = np.random.default_rng(seed)
    noise = rng.dirichlet(np.ones(k - 1), size=len(y_pred)) * 0.4
    p = np.zeros((len(y_pred), k))
    for i, c in enumerate(y_pred):
        p[i, np.arange(k) != c] = noise[i]
        p[i, c] = 0.6
    return p


def _binary_frame(p=P10, y=Y10, split="test", extra=None):
    return predictions_frame([f"b{i}.jpg" for i in range(len(p))], [GENDER],
                             {"gender": y}, {"gender": np.asarray(p)[:, None]}, split, extra)


def _race_frame(y_true, y_pred, seed=0, split="test", extra=None):
    proba = _proba_for(np.asarray(y_pred), len(RACE.classes), seed)
    return predictions_frame([f"r{i}.jpg" for i in range(len(y_true))], [RACE],
                             {"race": np.asarray(y_true)}, {"race": proba}, split, extra)


Y_RACE = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 1, 2, 3])
P_RACE = np.array([0, 1, 0, 1, 1, 2, 2, 0, 2, 3, 2, 3, 0, 1, 3, 3])


# --- the predictions frame -------------------------------------------------------------------

def test_predictions_frame_columns_and_values():
    n = 4
    race_p = np.array([[.7, .1, .1, .1], [.1, .2, .6, .1], [.25, .25, .25, .25], [0, 0, .1, .9]],
                      dtype=np.float32)
    f = predictions_frame(
        ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], [GENDER, RACE, AGE],
        {"gender": np.array([0, 1, 1, -1]), "race": np.array([0, 2, 1, 3]),
         "age": np.array([20.0, 35, 61, np.nan])},
        {"gender": np.array([[0.1], [0.5], [0.49], [0.9]], dtype=np.float32), "race": race_p,
         "age": np.array([[22.0], [30], [70], [40]])},
        "val", pd.DataFrame({"race": ["White", "Asian", "Black", "Indian"],
                             "age_years": [20.0, 35, 61, 50]}))
    assert list(f.columns) == [
        "source", "split", "gender_true", "gender_pred", "gender_prob_Male",
        "gender_prob_Female", "race_true", "race_pred", "race_prob_White", "race_prob_Black",
        "race_prob_Asian", "race_prob_Indian", "age_true", "age_pred", "group_race",
        "group_age_years"]
    assert len(f) == n and (f["split"] == "val").all()
    # binary: both classes' probabilities, summing to 1; predicted = P(Female) >= 0.5
    np.testing.assert_allclose(f["gender_prob_Male"] + f["gender_prob_Female"], 1.0)
    assert list(f["gender_pred"]) == ["Male", "Female", "Male", "Female"]
    assert list(f["gender_true"].iloc[:3]) == ["Male", "Female", "Female"]
    assert pd.isna(f["gender_true"].iloc[3])  # -1 = unlabelled
    # multiclass: argmax (first on ties), rows sum to 1 exactly in float64
    assert list(f["race_pred"]) == ["White", "Asian", "White", "Indian"]
    np.testing.assert_allclose(f.filter(like="race_prob_").sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert list(f["age_pred"]) == [22.0, 30, 70, 40]
    # unlabelled rows are left out of the metrics
    assert classification_metrics(f, "gender")["n"] == 3
    assert regression_metrics(f, "age")["n"] == 3


def test_predictions_frame_rejects_bad_input():
    with pytest.raises(ValueError, match="0 sources"):
        predictions_frame([], [GENDER], {"gender": []}, {"gender": np.zeros((0, 1))}, "test")
    with pytest.raises(ValueError, match="logits"):
        predictions_frame(["a", "b"], [GENDER], {"gender": [0, 1]},
                          {"gender": np.array([[-2.0], [3.0]])}, "test")
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        predictions_frame(["a"], [RACE], {"race": [0]}, {"race": np.ones((1, 3)) / 3}, "test")
    with pytest.raises(ValueError, match="no model output"):
        predictions_frame(["a"], [RACE], {"race": [0]}, {}, "test")
    with pytest.raises(ValueError, match="outside"):
        predictions_frame(["a"], [RACE], {"race": [7]}, {"race": np.ones((1, 4)) / 4}, "t")


def test_heads_are_recovered_from_columns():
    f = _race_frame(Y_RACE, P_RACE)
    (h,) = heads_from_frame(f)
    assert (h.name, h.kind, h.classes) == ("race", "multiclass", RACE.classes)
    assert classification_metrics(f, "race") == classification_metrics(f, RACE)


# --- classification equals scikit-learn ------------------------------------------------------

def test_binary_metrics_equal_sklearn():
    f = _binary_frame()
    m = classification_metrics(f, GENDER)
    y_pred = (P10 >= 0.5).astype(int)
    assert m["accuracy"] == skm.accuracy_score(Y10, y_pred)
    assert m["balanced_accuracy"] == skm.balanced_accuracy_score(Y10, y_pred)
    p, r, f1, s = skm.precision_recall_fscore_support(Y10, y_pred, labels=[0, 1],
                                                      zero_division=0)
    for i, c in enumerate(GENDER.classes):
        pc = m["per_class"][c]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == (p[i], r[i], f1[i],
                                                                             s[i])
        assert pc["sensitivity"] == pc["recall"]
    assert m["f1_macro"] == skm.f1_score(Y10, y_pred, average="macro")
    assert m["weighted"]["precision"] == skm.precision_score(Y10, y_pred, average="weighted")
    assert m["auc"] == skm.roc_auc_score(Y10, P10) and m["auc_reason"] is None
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y10, P10), abs=1e-12)
    assert m["confusion_matrix"] == skm.confusion_matrix(Y10, y_pred).tolist()
    assert m["positive_class"] == "Female"
    assert json.loads(json.dumps(m)) == m  # stored as JSON as is


def test_multiclass_metrics_equal_sklearn():
    f = _race_frame(Y_RACE, P_RACE)
    m = classification_metrics(f, RACE)
    proba = f[[f"race_prob_{c}" for c in RACE.classes]].to_numpy()
    labels = [0, 1, 2, 3]
    assert m["accuracy"] == skm.accuracy_score(Y_RACE, P_RACE)
    assert m["balanced_accuracy"] == skm.balanced_accuracy_score(Y_RACE, P_RACE)
    for avg in ("macro", "weighted"):
        for key, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                        ("f1", skm.f1_score)):
            assert m[avg][key] == fn(Y_RACE, P_RACE, average=avg, zero_division=0)
    assert m["f1_macro"] == skm.f1_score(Y_RACE, P_RACE, average="macro")
    assert m["auc"] == skm.roc_auc_score(Y_RACE, proba, multi_class="ovr", labels=labels)
    for i, c in enumerate(RACE.classes):
        assert m["auc_per_class"][c] == skm.roc_auc_score(Y_RACE == i, proba[:, i])
    assert m["log_loss"] == skm.log_loss(Y_RACE, proba, labels=labels)
    assert m["confusion_matrix"] == skm.confusion_matrix(Y_RACE, P_RACE).tolist()
    mcm = skm.multilabel_confusion_matrix(Y_RACE, P_RACE, labels=labels)
    for i, c in enumerate(RACE.classes):
        (tn, fp), _ = mcm[i]
        assert m["per_class"][c]["specificity"] == tn / (tn + fp)


def test_nine_class_accuracy_is_over_all_classes_not_a_corner():
    k = 9
    head = HeadSpec("age", "multiclass", [f"bin{i}" for i in range(k)])
    # classes 0, 1: five faces each, 9 of 10 right; classes 2..8: four faces each, 1 right
    yt, yp = [0] * 5 + [1] * 5, [0, 0, 0, 0, 1] + [1] * 5
    for c in range(2, k):
        yt += [c] * 4
        yp += [c, (c + 1) % k, (c + 2) % k, (c + 3) % k]
    yt, yp = np.array(yt), np.array(yp)
    f = predictions_frame([str(i) for i in range(len(yt))], [head], {"age": yt},
                          {"age": _proba_for(yp, k, seed=3)}, "test")
    m = classification_metrics(f, head)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (9, 9) and cm.sum() == len(yt)
    assert m["accuracy"] == skm.accuracy_score(yt, yp) == pytest.approx(16 / 38)
    corner = (cm[0, 0] + cm[1, 1]) / cm[:2, :2].sum()
    assert corner == pytest.approx(0.9)
    assert m["accuracy"] != pytest.approx(corner)
    # ordered bins: exact and within-one-bin accuracy
    assert m["within_one_bin_accuracy"] == within_one_bin_accuracy(yt, yp)


def test_specificity_by_hand_three_classes():
    head = HeadSpec("race", "multiclass", ["A", "B", "C"])
    yt = np.array([0, 0, 1, 1, 2, 2])
    yp = np.array([0, 1, 1, 2, 2, 0])
    f = predictions_frame(list("abcdef"), [head], {"race": yt},
                          {"race": _proba_for(yp, 3)}, "test")
    m = classification_metrics(f, head)
    # A: negatives = faces 2..5 (4), of which face 5 is called A -> TN 3, FP 1
    # B: negatives = faces 0,1,4,5; face 1 is called B -> 3/4
    # C: negatives = faces 0..3; face 3 is called C -> 3/4
    assert [m["per_class"][c]["specificity"] for c in "ABC"] == [3 / 4, 3 / 4, 3 / 4]
    assert [m["per_class"][c]["sensitivity"] for c in "ABC"] == [1 / 2, 1 / 2, 1 / 2]
    assert m["macro"]["specificity"] == 3 / 4


def test_within_one_bin_accuracy_by_hand():
    assert within_one_bin_accuracy([0, 1, 2, 3, 4], [0, 2, 0, 4, 1]) == 3 / 5
    with pytest.raises(ValueError):
        within_one_bin_accuracy([], [])


def test_confusion_matrix_keeps_never_predicted_and_absent_classes():
    head = HeadSpec("race", "multiclass", ["White", "Black", "Asian", "Indian", "Others"])
    yt = np.array([0, 0, 1, 1, 2, 2])  # Indian and Others never true
    yp = np.array([0, 1, 1, 0, 0, 1])  # Asian, Indian, Others never predicted
    f = predictions_frame(list("abcdef"), [head], {"race": yt},
                          {"race": _proba_for(yp, 5)}, "test")
    m = classification_metrics(f, head)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (5, 5)
    assert cm[:, 2].sum() == 0 and cm[2].sum() == 2  # Asian: a row, never predicted
    assert cm[3:].sum() == 0 and cm[:, 3:].sum() == 0
    assert cm.tolist() == skm.confusion_matrix(yt, yp, labels=range(5)).tolist()
    assert m["per_class"]["Asian"]["precision"] == 0 and m["per_class"]["Asian"]["support"] == 2
    # log loss still uses every class's column
    proba = f.filter(like="race_prob_").to_numpy()
    assert m["log_loss"] == skm.log_loss(yt, proba, labels=range(5))
    interp = Interpretation.from_frame(f, [head], dataset="synthetic")
    cmf = interp.confusion_matrix("race")
    assert list(cmf.index) == list(cmf.columns) == head.classes


# --- thresholds and ROC ----------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [0.3, 0.35])  # 0.35 equals a probability: >= counts it
def test_threshold_arithmetic_by_hand(threshold):
    f = _binary_frame()
    t = threshold_metrics(f, GENDER, threshold)
    assert (t["tp"], t["fp"], t["tn"], t["fn"]) == (4, 2, 3, 1)
    assert t["confusion_matrix"] == [[3, 2], [1, 4]]
    assert t["sensitivity"] == 4 / 5 and t["specificity"] == 3 / 5
    assert t["precision"] == 4 / 6 and t["f1"] == pytest.approx(8 / 11)
    assert t["accuracy"] == 7 / 10
    assert (t["fpr"], t["tpr"]) == (pytest.approx(0.4), 0.8)
    # the same threshold through classification_metrics
    m = classification_metrics(f, GENDER, threshold=threshold)
    assert m["confusion_matrix"] == t["confusion_matrix"]
    assert m["per_class"]["Female"]["specificity"] == t["specificity"]
    assert m["per_class"]["Female"]["recall"] == t["sensitivity"]
    # the operating point is a vertex of the ROC curve: the lowest threshold >= t
    c = roc_curves(f, GENDER)["Female"]
    i = np.flatnonzero(c["thresholds"] >= threshold)[-1]
    assert (c["fpr"][i], c["tpr"][i]) == (pytest.approx(t["fpr"]), pytest.approx(t["tpr"]))


def test_threshold_rejected_for_multiclass_and_out_of_range():
    f = _race_frame(Y_RACE, P_RACE)
    with pytest.raises(ValueError, match="binary"):
        threshold_metrics(f, RACE, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classification_metrics(_binary_frame(), GENDER, threshold=1.5)


def test_predicted_classes_follow_the_threshold_by_hand():
    f = _binary_frame()
    # P10 = .05 .15 .25 .28 .35 .45 .55 .65 .85 .95: from 0.3 up, six faces are Female
    at_03 = predicted_classes(f, GENDER, 0.3)
    assert list(at_03) == ["Male"] * 4 + ["Female"] * 6
    assert list(predicted_classes(f, GENDER, 0.35)) == list(at_03)  # >= counts 0.35
    assert list(predicted_classes(f, GENDER, 0.9)) == ["Male"] * 9 + ["Female"]
    assert list(predicted_classes(f, GENDER)) == list(f["gender_pred"])  # stored: P >= 0.5
    assert list(predicted_classes(f, GENDER)).count("Female") == 4
    # the same predictions as the metrics at that threshold
    cm = skm.confusion_matrix(Y10, (at_03 == "Female").astype(int)).tolist()
    assert cm == classification_metrics(f, GENDER, threshold=0.3)["confusion_matrix"]
    with pytest.raises(ValueError, match="binary"):
        predicted_classes(_race_frame(Y_RACE, P_RACE), RACE, 0.5)
    with pytest.raises(ValueError, match="regression"):
        predicted_classes(predictions_frame(["a"], [AGE], {"age": [3.0]},
                                            {"age": [[4.0]]}, "test"), AGE)


def test_roc_curves_equal_sklearn():
    fb = _binary_frame()
    (cls, c), = roc_curves(fb, GENDER).items()
    fpr, tpr, thr = skm.roc_curve(Y10, P10, drop_intermediate=False)
    assert cls == "Female"
    np.testing.assert_array_equal(c["fpr"], fpr)
    np.testing.assert_array_equal(c["tpr"], tpr)
    np.testing.assert_array_equal(c["thresholds"], thr)
    assert c["auc"] == skm.auc(fpr, tpr) == pytest.approx(skm.roc_auc_score(Y10, P10))
    f = _race_frame(Y_RACE, P_RACE)
    curves = roc_curves(f, RACE)
    proba = f.filter(like="race_prob_").to_numpy()
    assert list(curves) == RACE.classes
    for i, name in enumerate(RACE.classes):
        fpr, tpr, _ = skm.roc_curve(Y_RACE == i, proba[:, i], drop_intermediate=False)
        np.testing.assert_array_equal(curves[name]["fpr"], fpr)
        assert curves[name]["auc"] == pytest.approx(skm.roc_auc_score(Y_RACE == i, proba[:, i]))


# --- faces behind the numbers ----------------------------------------------------------------

def test_cell_members_are_exactly_that_cell():
    f = _race_frame(Y_RACE, P_RACE)
    for true_c in RACE.classes:
        for pred_c in RACE.classes:
            got = cell_members(f, RACE, true_c, pred_c)
            mask = (f["race_true"] == true_c) & (f["race_pred"] == pred_c)
            assert sorted(got.index) == sorted(f.index[mask])
            assert (got["confidence"] == got[f"race_prob_{pred_c}"]).all()
            assert got["confidence"].is_monotonic_decreasing
    cm = np.array(classification_metrics(f, RACE)["confusion_matrix"])
    assert len(cell_members(f, RACE, "Asian", "Indian")) == cm[2, 3] == 1
    assert cell_members(f, RACE, "White", "Indian").empty
    with pytest.raises(ValueError, match="not a class"):
        cell_members(f, RACE, "White", "Martian")


def test_cell_members_at_a_threshold():
    f = _binary_frame()
    got = cell_members(f, GENDER, "Male", "Female", threshold=0.3)  # false positives
    assert sorted(got["source"]) == ["b4.jpg", "b6.jpg"]
    assert (got["gender_pred"] == "Female").all()
    assert list(got["confidence"]) == [0.55, 0.35]


def test_cell_members_on_5000_rows():
    # correctness at the size the Evaluate page uses; speed is measured in bench/evaluate.py
    n = 5000
    rng = np.random.default_rng(1)
    yt = rng.integers(0, 4, n)
    f = _race_frame(yt, np.where(rng.random(n) < 0.7, yt, rng.integers(0, 4, n)),
                    extra=pd.DataFrame({"gender": rng.choice(["Male", "Female"], n),
                                        "age": rng.uniform(1, 90, n)}))
    got = cell_members(f, "race", "White", "Black")
    mask = (f["race_true"] == "White") & (f["race_pred"] == "Black")
    assert sorted(got["source"]) == sorted(f.loc[mask, "source"])


def test_top_losses():
    f = _race_frame(Y_RACE, P_RACE)
    proba = f.filter(like="race_prob_").to_numpy()
    every = top_losses(f, RACE, only_wrong=False)
    assert len(every) == len(f)
    # per-face loss is -log p(true); its mean is scikit-learn's log loss
    assert every["loss"].mean() == pytest.approx(skm.log_loss(Y_RACE, proba, labels=range(4)))
    assert every["loss"].is_monotonic_decreasing
    wrong = top_losses(f, RACE)
    assert len(wrong) == (Y_RACE != P_RACE).sum()
    assert (wrong["race_true"] != wrong["race_pred"]).all()
    row = wrong.iloc[0]
    assert row["loss"] == pytest.approx(-np.log(row[f"race_prob_{row['race_true']}"]))
    only = top_losses(f, RACE, true_class="White", pred_class="Black")
    assert set(only.index) == set(cell_members(f, RACE, "White", "Black").index)
    assert len(top_losses(f, RACE, k=2)) == 2


def test_top_losses_regression_is_absolute_error():
    f = predictions_frame(list("abc"), [AGE], {"age": np.array([10.0, 40, 70])},
                          {"age": np.array([[12.0], [30], [71]])}, "test")
    got = top_losses(f, AGE)
    assert list(got["source"]) == ["b", "a", "c"] and list(got["loss"]) == [10, 2, 1]


# --- regression ------------------------------------------------------------------------------

def test_regression_metrics_equal_sklearn_with_groups():
    yt = np.array([3.0, 8, 15, 25, 27, 33, 45, 61, 62, 95])
    yp = np.array([5.0, 8, 20, 22, 30, 30, 50, 55, 70, 80])
    f = predictions_frame([str(i) for i in range(10)], [AGE], {"age": yt},
                          {"age": yp[:, None]}, "test")
    m = regression_metrics(f, AGE)
    assert m["mae"] == skm.mean_absolute_error(yt, yp)
    assert m["rmse"] == skm.root_mean_squared_error(yt, yp)
    by = {g["group"]: g for g in m["by_group"]}
    assert list(by)[:3] == ["0-9", "10-19", "20-29"] and list(by)[-1] == "100+"
    assert by["0-9"] == {"group": "0-9", "n": 2, "mae": 1.0}
    assert by["20-29"]["n"] == 2 and by["20-29"]["mae"] == 3.0
    assert by["80-89"] == {"group": "80-89", "n": 0, "mae": None}
    custom = regression_metrics(f, AGE, groups=[0, 18, 40, 65, math.inf])["by_group"]
    assert [(g["group"], g["n"]) for g in custom] == [("0-17", 3), ("18-39", 3),
                                                      ("40-64", 3), ("65+", 1)]
    assert custom[3]["mae"] == 15.0
    with pytest.raises(ValueError, match="classification_metrics"):
        regression_metrics(_binary_frame(), GENDER)


# --- groups and intervals --------------------------------------------------------------------

def _grouped_frame():
    rng = np.random.default_rng(7)
    n = 120
    race = rng.choice(["White", "Black", "Asian"], n)
    gender = rng.integers(0, 2, n)
    p = np.clip(gender * 0.5 + rng.uniform(0, 0.5, n) + rng.normal(0, 0.2, n), 0, 1)
    age_true = rng.uniform(1, 80, n)
    extra = pd.DataFrame({"race": race, "age_years": age_true})
    f = predictions_frame([f"g{i}" for i in range(n)], [GENDER, AGE],
                          {"gender": gender, "age": age_true},
                          {"gender": p[:, None],
                           "age": (age_true + rng.normal(0, 6, n))[:, None]},
                          "test", extra)
    return f


def test_group_breakdown_counts_accuracy_and_wilson():
    f = _grouped_frame()
    gb = group_breakdown(f, GENDER, ["race", "gender"])
    assert list(gb.columns) == ["race", "gender", "n", "correct", "accuracy", "accuracy_ci_low",
                                "accuracy_ci_high", "f1_macro"]
    counts = f.groupby(["group_race", "gender_true"]).size()
    assert gb["n"].sum() == len(f) and len(gb) == len(counts)
    assert list(gb["gender"].cat.categories) == ["Male", "Female"]  # the head's class order
    for _, row in gb.iterrows():
        sub = f[(f["group_race"] == row["race"]) & (f["gender_true"] == row["gender"])]
        assert row["n"] == counts[(row["race"], row["gender"])] == len(sub)
        assert row["accuracy"] == skm.accuracy_score(sub["gender_true"], sub["gender_pred"])
        assert row["f1_macro"] == skm.f1_score(sub["gender_true"], sub["gender_pred"],
                                               average="macro", zero_division=0)
        assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]
    # one interval against the closed-form Wilson score interval
    row = gb.iloc[0]
    k, n, z = row["correct"], row["n"], 1.959963984540054
    ph = k / n
    centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n))
    assert row["accuracy_ci_low"] == pytest.approx(centre - half, abs=1e-9)
    assert row["accuracy_ci_high"] == pytest.approx(centre + half, abs=1e-9)
    assert wilson_interval(k, n) == (row["accuracy_ci_low"], row["accuracy_ci_high"])


def test_wilson_interval_by_hand_and_bad_input():
    lo, hi = wilson_interval(8, 10)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


def test_group_breakdown_by_age_groups_and_regression_bootstrap_is_seeded():
    f = _grouped_frame()
    gb = group_breakdown(f, GENDER, ["age_years"], bins={"age_years": [0, 40, math.inf]})
    assert list(gb["age_years"]) == ["0-39", "40+"]
    assert gb["n"].tolist() == [(f["group_age_years"] < 40).sum(), (f["group_age_years"] >= 40)
                                .sum()]
    a = group_breakdown(f, AGE, ["race"], seed=3)
    b = group_breakdown(f, AGE, ["race"], seed=3)
    c = group_breakdown(f, AGE, ["race"], seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["mae_ci_low"], c["mae_ci_low"])
    for _, row in a.iterrows():
        sub = f[f["group_race"] == row["race"]]
        assert row["mae"] == skm.mean_absolute_error(sub["age_true"], sub["age_pred"])
        assert row["mae_ci_low"] <= row["mae"] <= row["mae_ci_high"]
    assert bootstrap_ci([1.0, 2, 3, 10], seed=1) == bootstrap_ci([1.0, 2, 3, 10], seed=1)
    assert all(math.isnan(v) for v in bootstrap_ci([5.0]))
    with pytest.raises(ValueError, match="cannot group by"):
        group_breakdown(f, GENDER, ["hair"])


def _hand_bootstrap(metric, *arrays, n=2000, seed=11):
    """A percentile bootstrap written out: resample faces (rows of every array together)."""
    rng = np.random.default_rng(seed)
    m = len(arrays[0])
    vals = [metric(*(a[i] for a in arrays)) for i in rng.integers(0, m, (n, m))]
    return np.percentile(vals, [2.5, 97.5])


def test_overall_intervals_by_hand():
    f = _grouped_frame()
    t = overall_intervals(f, GENDER).set_index("metric")
    assert list(t.index) == ["accuracy", "balanced_accuracy", "auc"]
    yt = (f["gender_true"] == "Female").to_numpy()
    yp = (f["gender_pred"] == "Female").to_numpy()
    p = f["gender_prob_Female"].to_numpy()
    k = int((yt == yp).sum())
    assert t.at["accuracy", "value"] == skm.accuracy_score(yt, yp)
    assert (t.at["accuracy", "ci_low"], t.at["accuracy", "ci_high"]) == wilson_interval(k, len(f))
    assert t.at["balanced_accuracy", "value"] == skm.balanced_accuracy_score(yt, yp)
    assert t.at["auc", "value"] == skm.roc_auc_score(yt, p)
    assert t["n"].tolist() == [len(f)] * 3
    # the bootstrap resamples faces with their answers (paired): a written-out one agrees
    for metric, args in (("balanced_accuracy", (skm.balanced_accuracy_score, yt, yp)),
                         ("auc", (skm.roc_auc_score, yt, p))):
        lo, hi = _hand_bootstrap(*args)
        assert t.at[metric, "ci_low"] == pytest.approx(lo, abs=0.03)
        assert t.at[metric, "ci_high"] == pytest.approx(hi, abs=0.03)
        assert t.at[metric, "ci_low"] < t.at[metric, "value"] < t.at[metric, "ci_high"]
    assert bootstrap_metric_ci(skm.roc_auc_score, yt, p, seed=1) == \
        bootstrap_metric_ci(skm.roc_auc_score, yt, p, seed=1)
    assert all(math.isnan(v) for v in bootstrap_metric_ci(skm.roc_auc_score, yt[:1], p[:1]))
    # age: MAE with a bootstrap of the absolute errors; the share inside the true bin (Wilson)
    ages = f.assign(group_age_bin=np.resize(["20-29", "more than 70", None, "3-9"], len(f)))
    a = overall_intervals(ages, AGE, bins_column="age_bin").set_index("metric")
    err = np.abs(f["age_pred"] - f["age_true"]).to_numpy()
    assert a.at["mae", "value"] == pytest.approx(err.mean())
    assert (a.at["mae", "ci_low"], a.at["mae", "ci_high"]) == bootstrap_ci(err)
    lo = {"20-29": 20, "more than 70": 70, "3-9": 3}
    hi = {"20-29": 30, "more than 70": 120, "3-9": 10}
    rows = [(b, q) for b, q in zip(ages["group_age_bin"], ages["age_pred"]) if isinstance(b, str)]
    inside = sum(lo[b] <= q <= hi[b] for b, q in rows)
    assert 0 < inside < len(rows)
    assert a.at["inside_bin", "value"] == inside / len(rows) and a.at["inside_bin", "n"] == \
        len(rows)
    assert (a.at["inside_bin", "ci_low"], a.at["inside_bin", "ci_high"]) == \
        wilson_interval(inside, len(rows))
    assert "inside_bin" not in overall_intervals(f, AGE)["metric"].tolist()
    # several classes: one-vs-rest macro AUC, left out while a class is absent
    y = np.arange(40) % 4
    r = overall_intervals(_race_frame(y, (y + (np.arange(40) % 5 == 0)) % 4), RACE)
    assert r["metric"].tolist() == ["accuracy", "balanced_accuracy", "auc"]
    assert "auc" not in overall_intervals(_race_frame(y % 3, y % 3), RACE)["metric"].tolist()


# --- Interpretation --------------------------------------------------------------------------

def test_interpretation_summary_shape_and_splits():
    test = _grouped_frame()
    val = test.iloc[:50].assign(split="val")
    frame = pd.concat([test, val], ignore_index=True)
    interp = Interpretation.from_frame(frame, [GENDER, AGE], dataset="utkface", split="test")
    s = interp.summary()
    assert json.loads(json.dumps(s)) == s
    assert set(s) == {"dataset", "split", "n", "heads"}
    assert (s["dataset"], s["split"], s["n"]) == ("utkface", "test", len(test))
    assert set(s["heads"]) == {"gender", "age"}
    assert set(s["heads"]["gender"]) == {"accuracy", "balanced_accuracy", "f1_macro", "auc"}
    assert set(s["heads"]["age"]) == {"mae", "rmse"}
    g = interp.metrics_["gender"]
    assert s["heads"]["gender"]["accuracy"] == g["accuracy"] == skm.accuracy_score(
        test["gender_true"], test["gender_pred"])
    assert s["heads"]["age"]["mae"] == skm.mean_absolute_error(test["age_true"], test["age_pred"])
    assert (g["dataset"], g["split"]) == ("utkface", "test")
    assert interp.roc_curves_ is interp.roc_curves_  # computed once
    cm = interp.cell_members("gender", "Male", "Female")
    assert (cm.attrs["dataset"], cm.attrs["split"]) == ("utkface", "test")
    v = interp.for_split("val")
    assert (v.split, v.n_, v.summary()["n"]) == ("val", 50, 50)
    with pytest.raises(ValueError, match="pass split="):
        Interpretation.from_frame(frame, [GENDER, AGE], dataset="utkface")
    with pytest.raises(ValueError, match="pass split="):
        classification_metrics(frame, GENDER)
    assert classification_metrics(frame, GENDER, split="val")["n"] == 50


def test_a_fresh_interpretation_computes_nothing_until_asked(monkeypatch):
    """Opening one head computes that head's metrics once, and no other head's."""
    from faceml.evaluation import interpretation

    calls = []

    def counting(fn):
        def wrapped(*args, **kwargs):
            calls.append((fn.__name__, getattr(args[1], "name", args[1])))
            return fn(*args, **kwargs)
        return wrapped

    for name in ("classification_metrics", "regression_metrics", "roc_curves",
                 "group_breakdown", "top_losses"):
        monkeypatch.setattr(interpretation, name, counting(getattr(interpretation, name)))
    interp = Interpretation.from_frame(_grouped_frame(), [GENDER, AGE], dataset="utkface")
    assert calls == []
    assert interp.metrics_.computed() == [] and interp.roc_curves_.computed() == []
    assert interp.metrics("gender")["accuracy"] == interp.metrics_["gender"]["accuracy"]
    assert interp.head("gender") is GENDER
    assert calls == [("classification_metrics", "gender")]
    assert interp.metrics_.computed() == ["gender"]
    interp.roc_curves("gender")
    interp.roc_curves("gender")
    assert calls == [("classification_metrics", "gender"), ("roc_curves", "gender")]
    interp.summary()  # every head, each computed once
    assert calls == [("classification_metrics", "gender"), ("roc_curves", "gender"),
                     ("regression_metrics", "age")]


def test_interpretation_has_two_constructors_and_checks_columns_up_front():
    f = _grouped_frame()
    with pytest.raises(TypeError):
        Interpretation(f, [GENDER], dataset="x")  # the constructors are from_frame/from_run
    with pytest.raises(ValueError, match="no column"):
        Interpretation.from_frame(f.drop(columns=["gender_pred"]), [GENDER], dataset="x")
    with pytest.raises(ValueError, match="no head 'race'"):
        Interpretation.from_frame(f, [GENDER], dataset="x").head("race")


# --- degenerate input ------------------------------------------------------------------------

def test_one_class_only_gives_auc_none_with_reason():
    f = _binary_frame(y=np.ones(10, dtype=int))
    m = classification_metrics(f, GENDER)
    assert m["auc"] is None and "only one class" in m["auc_reason"]
    assert roc_curves(f, GENDER) == {}
    assert threshold_metrics(f, GENDER, 0.5)["fpr"] is None
    assert Interpretation.from_frame(f, dataset="x").summary()["heads"]["gender"]["auc"] is None


def test_class_absent_from_truth_gives_auc_none_with_reason():
    yt = np.array([0, 0, 1, 1, 2, 2, 0, 1])  # no Indian
    yp = np.array([0, 1, 1, 3, 2, 0, 0, 1])
    f = _race_frame(yt, yp)
    m = classification_metrics(f, RACE)
    assert m["auc"] is None and "Indian" in m["auc_reason"]
    assert m["auc_per_class"]["Indian"] is None
    proba = f.filter(like="race_prob_").to_numpy()
    assert m["auc_per_class"]["White"] == skm.roc_auc_score(yt == 0, proba[:, 0])
    assert "Indian" not in roc_curves(f, RACE)


def test_empty_frame_is_a_clear_error():
    f = _binary_frame().iloc[:0]
    for call in (lambda: classification_metrics(f, GENDER),
                 lambda: top_losses(f, GENDER),
                 lambda: cell_members(f, GENDER, "Male", "Male"),
                 lambda: group_breakdown(f, GENDER, ["gender"]),
                 lambda: Interpretation.from_frame(f, [GENDER], dataset="x")):
        with pytest.raises(ValueError, match="empty"):
            call()
    with pytest.raises(ValueError, match="no rows for split 'val'"):
        classification_metrics(_binary_frame(), GENDER, split="val")


NUMBERS = ("predictions", "classification", "regression", "losses", "groups", "interpretation",
           "stored")


@pytest.mark.parametrize("module", NUMBERS)
def test_metrics_module_imports_no_ui_or_deep_learning(module):
    """The modules computing numbers import no UI, deep learning or plotting (figures.py only)."""
    tree = ast.parse((EVALUATION / f"{module}.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert not roots & {"streamlit", "keras", "tensorflow", "matplotlib", "plotly", "altair"}
