"""Detection metrics (fake is the positive class) and their frame-level / video-level breakdowns."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

# Keeps log loss finite for a confident wrong prediction (p exactly 0 or 1).
LOG_LOSS_EPS = 1e-7
THRESHOLD_RULES = ("youden", "eer", "accuracy")

LEVEL_TITLES = {
    "frame_level": "Frame-level",
    "video_level": "Video-level",
}
LEVEL_DESCRIPTIONS = {
    "frame_level": "every analysed face crop scored on its own (one sample per face per analysed frame, "
    "from the face tracks that counted in the video's verdict), labelled with its video's label",
    "video_level": "one sample per video: the video's aggregated p_fake (the score behind its verdict)",
}
BY_METHOD_RULE = (
    "computed on the method's fakes together with all reals of the same dataset(s) "
    "(the AUC of real vs. this method, as FaceForensics++ results are usually reported)"
)
BY_DATASET_RULE = "computed on all samples (reals and fakes) of the dataset"


def _as_arrays(y_true: Iterable[int], p_fake: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(list(y_true), dtype=int)
    scores = np.asarray(list(p_fake), dtype=float)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"y_true and p_fake must be flat and of equal length, got {labels.shape} and {scores.shape}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("y_true must hold only 0 (real) and 1 (fake)")
    if not np.isfinite(scores).all():
        raise ValueError("p_fake must hold finite numbers (drop unscored samples first)")
    return labels, scores


def equal_error_rate(y_true: Iterable[int], p_fake: Iterable[float]) -> tuple[float, float]:
    """The EER and the threshold at which it occurs.

    The EER is where the false positive rate equals the false negative rate, found by linear interpolation
    between the two ROC points on either side of the crossing; the threshold is interpolated the same way.
    Needs both classes.
    """
    labels, scores = _as_arrays(y_true, p_fake)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    gap = fnr - fpr  # falls from 1 (nothing called fake) to -1 (everything called fake)
    crossing = int(np.argmax(gap <= 0))
    if gap[crossing] == 0:
        return float(fpr[crossing]), float(thresholds[crossing])
    before = crossing - 1
    fraction = gap[before] / (gap[before] - gap[crossing])
    eer = fpr[before] + fraction * (fpr[crossing] - fpr[before])
    upper = thresholds[before]
    if not np.isfinite(upper):  # the "nothing is fake" point sits at +inf; no score above the top one exists
        upper = thresholds[crossing]
    threshold = upper + fraction * (thresholds[crossing] - upper)
    return float(eer), float(threshold)


def binary_metrics(y_true: Iterable[int], p_fake: Iterable[float], threshold: float = 0.5) -> dict[str, Any]:
    """Classification metrics of p_fake against labels (0 real, 1 fake); a sample is called fake at p >= threshold.

    Ranking metrics (auc, average_precision, eer) need both classes: with one class they are None and ``notes``
    says why. With no samples every metric is None.
    """
    labels, scores = _as_arrays(y_true, p_fake)
    n_fake = int(labels.sum())
    metrics: dict[str, Any] = {
        "n": int(labels.size),
        "n_real": int(labels.size - n_fake),
        "n_fake": n_fake,
        "threshold": float(threshold),
        "accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "auc": None,
        "average_precision": None,
        "eer": None,
        "eer_threshold": None,
        "log_loss": None,
        "confusion": None,
        "notes": [],
    }
    if labels.size == 0:
        metrics["notes"].append("no samples")
        return metrics

    predicted = (scores >= threshold).astype(int)
    matrix = confusion_matrix(labels, predicted, labels=[0, 1])
    (tn, fp), (fn, tp) = matrix.tolist()
    metrics["accuracy"] = float(accuracy_score(labels, predicted))
    metrics["precision"] = float(precision_score(labels, predicted, labels=[0, 1], zero_division=0.0))
    metrics["recall"] = float(recall_score(labels, predicted, labels=[0, 1], zero_division=0.0))
    metrics["f1"] = float(f1_score(labels, predicted, labels=[0, 1], zero_division=0.0))
    metrics["confusion"] = {"tn": tn, "fp": fp, "fn": fn, "tp": tp, "matrix": matrix.tolist()}
    clipped = np.clip(scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    metrics["log_loss"] = float(log_loss(labels, clipped, labels=[0, 1]))
    if tp + fp == 0:
        metrics["notes"].append("no sample was called fake: precision is reported as 0")
    if n_fake == 0:
        metrics["notes"].append("no fake samples: recall is reported as 0")

    if n_fake == 0 or n_fake == labels.size:
        present = "real" if n_fake == 0 else "fake"
        metrics["notes"].append(f"only {present} samples: AUC, average precision and EER need both classes")
        return metrics
    metrics["auc"] = float(roc_auc_score(labels, scores))
    metrics["average_precision"] = float(average_precision_score(labels, scores))
    metrics["eer"], metrics["eer_threshold"] = equal_error_rate(labels, scores)
    return metrics


def _between(lower: float, upper: float) -> float:
    """A threshold strictly above ``lower`` and at most ``upper``: the middle of the gap between two scores."""
    middle = (lower + upper) / 2.0
    return middle if middle > lower else float(np.nextafter(lower, math.inf))


def choose_threshold(y_true: Iterable[int], p_fake: Iterable[float], rule: str = "youden") -> float:
    """A verdict threshold chosen on (validation) scores.

    - ``youden``: maximises TPR - FPR (balanced between the classes whatever their counts);
    - ``eer``: the threshold at the equal error rate;
    - ``accuracy``: maximises accuracy on these samples (follows their class balance).

    For youden and accuracy the threshold lies midway between the lowest score called fake and the highest called
    real, so the decisions on these samples are exactly the optimal ones. Raises ValueError without both classes.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose from {', '.join(THRESHOLD_RULES)}")
    labels, scores = _as_arrays(y_true, p_fake)
    n_fake = int(labels.sum())
    if n_fake == 0 or n_fake == labels.size:
        raise ValueError("choosing a threshold needs both real and fake samples")
    if rule == "eer":
        return equal_error_rate(labels, scores)[1]

    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    if rule == "youden":
        objective = tpr - fpr
        objective[0] = -math.inf  # "nothing is fake" is never the balanced choice (its J is 0, as for "all fake")
    else:
        objective = (tpr * n_fake + (1.0 - fpr) * (labels.size - n_fake)) / labels.size
    best = int(np.argmax(objective))
    # thresholds are the distinct scores in decreasing order (after +inf for "nothing is fake").
    if best == 0:
        return _between(float(thresholds[1]), max(1.0, float(thresholds[1])))
    lowest_fake = float(thresholds[best])
    highest_real = float(thresholds[best + 1]) if best + 1 < len(thresholds) else min(0.0, lowest_fake)
    if highest_real == lowest_fake:  # everything called fake and the lowest score is 0: no gap below it
        return lowest_fake
    return (highest_real + lowest_fake) / 2.0


def threshold_for_false_alarm_rate(real_scores: Iterable[float], max_false_alarm: float) -> float:
    """The lowest threshold (within 1e-6) that calls at most ``max_false_alarm`` of these real samples' scores fake
    (p_fake >= threshold): a threshold chosen on real videos alone, where no fakes like the ones to come exist."""
    scores = np.asarray(list(real_scores), dtype=float)
    if scores.size == 0:
        raise ValueError("choosing a threshold needs real scores")
    return float(np.quantile(scores, 1 - max_false_alarm, method="higher")) + 1e-6


def _subset(rows: Sequence[Mapping[str, Any]], keep) -> tuple[list[int], list[float]]:
    chosen = [row for row in rows if keep(row)]
    return [int(row["label"]) for row in chosen], [float(row["p_fake"]) for row in chosen]


def _level_metrics(rows: Sequence[Mapping[str, Any]], level: str, threshold: float) -> dict[str, Any]:
    scored = [row for row in rows if row.get("p_fake") is not None]
    labels, scores = _subset(scored, lambda row: True)
    metrics = binary_metrics(labels, scores, threshold)
    result: dict[str, Any] = {
        "level": level,
        "title": LEVEL_TITLES[level],
        "description": LEVEL_DESCRIPTIONS[level],
        **metrics,
        "n_videos": len({(row["dataset"], row["key"]) for row in scored}),
        "not_scored": len(rows) - len(scored),
    }

    reals_by_dataset: dict[str, int] = {}
    for row in scored:
        if int(row["label"]) == 0:
            reals_by_dataset[row["dataset"]] = reals_by_dataset.get(row["dataset"], 0) + 1
    fake_methods: dict[str, set[str]] = {}
    for row in scored:
        if int(row["label"]) == 1:
            fake_methods.setdefault(row["method"], set()).add(row["dataset"])
    by_method: dict[str, Any] = {}
    for method in sorted(fake_methods):
        datasets = fake_methods[method]
        method_labels, method_scores = _subset(
            scored,
            lambda row: (int(row["label"]) == 1 and row["method"] == method)
            or (int(row["label"]) == 0 and row["dataset"] in datasets),
        )
        by_method[method] = {"datasets": sorted(datasets), **binary_metrics(method_labels, method_scores, threshold)}
    result["by_method"] = by_method
    result["by_method_rule"] = BY_METHOD_RULE

    by_dataset: dict[str, Any] = {}
    for dataset in sorted({row["dataset"] for row in scored}):
        dataset_labels, dataset_scores = _subset(scored, lambda row: row["dataset"] == dataset)
        by_dataset[dataset] = binary_metrics(dataset_labels, dataset_scores, threshold)
    result["by_dataset"] = by_dataset
    result["by_dataset_rule"] = BY_DATASET_RULE
    return result


def evaluate_predictions(
    frame_rows: Sequence[Mapping[str, Any]],
    video_rows: Sequence[Mapping[str, Any]],
    threshold: float,
) -> dict[str, Any]:
    """Overall, per-method and per-dataset metrics at both levels.

    Each row is a mapping with ``key`` (the video), ``label`` (0/1), ``p_fake``, ``method`` and ``dataset``;
    frame rows have one row per analysed face, video rows one per video. Rows whose p_fake is None are left out
    of the metrics and counted as ``not_scored``.
    """
    return {
        "threshold": float(threshold),
        "frame_level": _level_metrics(frame_rows, "frame_level", threshold),
        "video_level": _level_metrics(video_rows, "video_level", threshold),
    }
