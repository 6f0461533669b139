"""Metrics against hand-computed values, degenerate inputs, thresholds, and the frame/video-level breakdowns."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fakescope.evaluation import binary_metrics, choose_threshold, equal_error_rate, evaluate_predictions

# 4 fakes then 6 reals; at threshold 0.5: tp = .9 .8 .6, fn = .2, fp = .7 .55, tn = .4 .3 .1 .05
LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
SCORES = [0.9, 0.8, 0.6, 0.2, 0.7, 0.4, 0.3, 0.1, 0.55, 0.05]


def test_threshold_metrics_match_hand_computed_values():
    metrics = binary_metrics(LABELS, SCORES, threshold=0.5)
    assert (metrics["n"], metrics["n_real"], metrics["n_fake"], metrics["threshold"]) == (10, 6, 4, 0.5)
    assert metrics["confusion"] == {"tn": 4, "fp": 2, "fn": 1, "tp": 3, "matrix": [[4, 2], [1, 3]]}
    assert metrics["accuracy"] == pytest.approx(7 / 10)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1"] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert metrics["notes"] == []


def test_a_score_equal_to_the_threshold_is_called_fake():
    metrics = binary_metrics(LABELS, SCORES, threshold=0.6)
    assert metrics["confusion"]["tp"] == 3 and metrics["confusion"]["fp"] == 1  # .6 counts, .55 no longer does
    higher = binary_metrics(LABELS, SCORES, threshold=0.75)
    assert higher["confusion"] == {"tn": 6, "fp": 0, "fn": 2, "tp": 2, "matrix": [[6, 0], [2, 2]]}


@pytest.mark.parametrize(
    ("labels", "scores", "auc"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),  # perfectly separated
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),  # perfectly reversed
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # the classic example: 3 of 4 real/fake pairs ordered right
        ([0, 1], [0.5, 0.5], 0.5),  # a tie counts half
    ],
)
def test_auc_on_known_cases(labels, scores, auc):
    assert binary_metrics(labels, scores)["auc"] == pytest.approx(auc)


def test_average_precision_on_the_classic_example():
    # Ranked: .8 fake (precision 1 at recall .5), .4 real, .35 fake (precision 2/3 at recall 1).
    metrics = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert metrics["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_eer_when_a_roc_point_has_equal_error_rates():
    # At threshold .4 one of two reals (.4) is called fake and one of two fakes (.35) is missed.
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx((0.5, 0.4))


def test_eer_interpolates_between_roc_points():
    # ROC points: (fpr 0, fnr .5) at threshold .8, then (fpr .5, fnr 0) at .3 (a real and a fake tie there).
    # The segment between them crosses fpr == fnr halfway: EER .25, threshold halfway between .8 and .3.
    eer, threshold = equal_error_rate([0, 0, 1, 1], [0.3, 0.1, 0.3, 0.8])
    assert eer == pytest.approx(0.25)
    assert threshold == pytest.approx(0.55)
    metrics = binary_metrics([0, 0, 1, 1], [0.3, 0.1, 0.3, 0.8])
    assert (metrics["eer"], metrics["eer_threshold"]) == pytest.approx((0.25, 0.55))


def test_eer_of_separated_and_reversed_scores():
    eer, threshold = equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert eer == 0.0 and 0.2 < threshold <= 0.8
    assert equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])[0] == pytest.approx(1.0)


def test_log_loss_matches_the_formula_and_stays_finite_for_certain_mistakes():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.2, 0.4, 0.6])
    expected = -np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
    assert binary_metrics(labels, scores)["log_loss"] == pytest.approx(expected)
    # A fake scored exactly 0 would cost infinity; clipping at 1e-7 keeps it at -log(1e-7) for that sample.
    certain = binary_metrics([1, 0], [0.0, 0.0])["log_loss"]
    assert math.isfinite(certain)
    assert certain == pytest.approx(-math.log(1e-7) / 2, rel=1e-3)


def test_a_single_class_gives_no_ranking_metrics_but_still_counts():
    metrics = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7], threshold=0.5)
    assert metrics["auc"] is None and metrics["average_precision"] is None and metrics["eer"] is None
    assert any("only fake" in note for note in metrics["notes"])
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["confusion"]["matrix"] == [[0, 0], [1, 2]]
    reals = binary_metrics([0, 0], [0.1, 0.2])
    assert reals["auc"] is None and any("only real" in note for note in reals["notes"])
    assert reals["accuracy"] == 1.0 and reals["confusion"]["tn"] == 2


def test_empty_input_gives_none_everywhere():
    metrics = binary_metrics([], [])
    assert metrics["n"] == 0 and metrics["n_real"] == 0 and metrics["n_fake"] == 0
    for key in ("accuracy", "precision", "recall", "f1", "auc", "average_precision", "eer", "log_loss", "confusion"):
        assert metrics[key] is None, key


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equal length"):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="only 0"):
        binary_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="finite"):
        binary_metrics([0, 1], [0.5, float("nan")])


# 6 reals, 2 fakes. Youden's J is best at .45 (both fakes caught, 2 of 6 reals wrong: J = 2/3); accuracy is best
# at .9 (one fake caught, no real wrong: 7/8). Each threshold lands midway to the next lower score.
UNBALANCED_LABELS = [0, 0, 0, 0, 0, 0, 1, 1]
UNBALANCED_SCORES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.45, 0.9]


def test_choose_threshold_by_youden_and_by_accuracy():
    assert choose_threshold(UNBALANCED_LABELS, UNBALANCED_SCORES, "youden") == pytest.approx((0.45 + 0.4) / 2)
    assert choose_threshold(UNBALANCED_LABELS, UNBALANCED_SCORES, "accuracy") == pytest.approx((0.9 + 0.6) / 2)


def test_choose_threshold_by_eer_is_the_threshold_at_the_eer():
    expected = binary_metrics(UNBALANCED_LABELS, UNBALANCED_SCORES)["eer_threshold"]
    assert choose_threshold(UNBALANCED_LABELS, UNBALANCED_SCORES, "eer") == pytest.approx(expected)


def test_accuracy_rule_can_call_everything_real():
    # The only fake scores lower than two of three reals: calling nothing fake is right 3 times in 4.
    threshold = choose_threshold([0, 0, 0, 1], [0.9, 0.8, 0.2, 0.3], "accuracy")
    assert threshold == pytest.approx(0.95)
    assert binary_metrics([0, 0, 0, 1], [0.9, 0.8, 0.2, 0.3], threshold)["accuracy"] == 0.75


def test_chosen_thresholds_reach_the_best_achievable_value():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=60)
    scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1).round(2)  # rounded: ties happen
    candidates = np.concatenate([np.unique(scores), [1.01]])

    def youden(t: float) -> float:
        predicted = scores >= t
        return predicted[labels == 1].mean() - predicted[labels == 0].mean()

    def accuracy(t: float) -> float:
        return float(((scores >= t) == labels).mean())

    assert youden(choose_threshold(labels, scores, "youden")) == pytest.approx(max(map(youden, candidates)))
    assert accuracy(choose_threshold(labels, scores, "accuracy")) == pytest.approx(max(map(accuracy, candidates)))


def test_choose_threshold_refuses_one_class_and_unknown_rules():
    with pytest.raises(ValueError, match="both"):
        choose_threshold([1, 1], [0.2, 0.8])
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold([0, 1], [0.2, 0.8], "median")


def _row(key: str, label: int, p_fake: float | None, method: str, dataset: str = "ffpp") -> dict:
    return {"key": key, "label": label, "p_fake": p_fake, "method": method, "dataset": dataset}


def test_evaluate_predictions_labels_levels_and_breaks_down_by_method_with_the_reals():
    videos = [
        _row("r1", 0, 0.1, "original"),
        _row("r2", 0, 0.6, "original"),
        _row("d1", 1, 0.9, "Deepfakes"),
        _row("d2", 1, 0.4, "Deepfakes"),
        _row("f1", 1, 0.7, "Face2Face"),
        _row("c1", 0, 0.95, "original", dataset="celebdf"),  # a real of another dataset: not in ffpp methods
        _row("x1", 1, None, "Deepfakes"),  # not scored
    ]
    frames = [
        _row("r1", 0, 0.2, "original"), _row("r1", 0, 0.3, "original"),
        _row("d1", 1, 0.8, "Deepfakes"), _row("d1", 1, 0.1, "Deepfakes"),
        _row("f1", 1, 0.6, "Face2Face"),
    ]
    result = evaluate_predictions(frames, videos, threshold=0.5)
    video, frame = result["video_level"], result["frame_level"]
    assert video["title"] == "Video-level" and frame["title"] == "Frame-level"
    assert (video["n"], video["n_real"], video["n_fake"], video["not_scored"]) == (6, 3, 3, 1)
    assert (frame["n"], frame["n_videos"]) == (5, 3)

    deepfakes = video["by_method"]["Deepfakes"]
    assert (deepfakes["n"], deepfakes["n_real"], deepfakes["n_fake"]) == (4, 2, 2)  # d1 d2 + ffpp reals r1 r2
    # Pairs (fake, real): (.9,.1) (.9,.6) (.4,.1) right, (.4,.6) wrong -> 3/4.
    assert deepfakes["auc"] == pytest.approx(0.75)
    assert video["by_method"]["Face2Face"]["n"] == 3 and video["by_method"]["Face2Face"]["auc"] == pytest.approx(1.0)
    assert set(video["by_method"]) == {"Deepfakes", "Face2Face"}
    assert "together with all reals" in video["by_method_rule"]
    assert frame["by_method"]["Deepfakes"]["n"] == 4  # 2 Deepfakes faces + 2 real faces

    assert set(video["by_dataset"]) == {"ffpp", "celebdf"}
    assert video["by_dataset"]["ffpp"]["n"] == 5 and video["by_dataset"]["celebdf"]["auc"] is None
    # Overall video-level AUC over all six scored videos, by hand: fakes .9 .4 .7 vs reals .1 .6 .95.
    pairs = [(f, r) for f in (0.9, 0.4, 0.7) for r in (0.1, 0.6, 0.95)]
    assert video["auc"] == pytest.approx(sum(f > r for f, r in pairs) / len(pairs))


def test_threshold_for_a_false_alarm_rate_calls_at_most_that_share_of_reals_fake():
    from fakescope.evaluation.metrics import threshold_for_false_alarm_rate

    reals = np.random.default_rng(0).beta(2, 5, size=62)  # scores of real videos, mostly low
    threshold = threshold_for_false_alarm_rate(reals, 0.05)
    called = int((reals >= threshold).sum())
    assert called == 3  # 5% of 62 is 3.1: three, and the fourth-highest real sits just below
    assert np.sort(reals)[-4] < threshold <= np.sort(reals)[-3]
    assert (reals >= threshold_for_false_alarm_rate(reals, 0.0)).sum() == 0
    with pytest.raises(ValueError):
        threshold_for_false_alarm_rate([], 0.05)
