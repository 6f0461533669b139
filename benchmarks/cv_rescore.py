"""Re-score stored cross-validation folds under other video-score rules, or averaged over recipes (run by hand).

    .venv/bin/python benchmarks/cv_rescore.py runs/corpus-tail03-paired-noise [RUN ...] [--rules mean median ...]

Each RUN is a `scripts/corpus_recipe.py cv --out RUN` directory; its folds' stored per-frame scores
(`cv/PAIR/scores-last-step.json` where the recipe averages weights, else `scores.json`) are turned into video scores
by each rule and measured as the recipe measures them (fold video AUC, calibrated threshold, test-half reals called
fake, cross-dataset AUC). With several RUNs, each video's frame scores are first averaged over the runs (an ensemble
of the recipes, fold by fold). Nothing is trained or scanned: a few seconds.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "src")]

import corpus_recipe  # noqa: E402


def _clipped(frames: list[float]) -> np.ndarray:
    return np.clip(np.asarray(frames, dtype=float), 1e-6, 1 - 1e-6)


def _logit_mean(frames: list[float]) -> float:
    p = _clipped(frames)
    return float(1 / (1 + np.exp(-np.log(p / (1 - p)).mean())))


def _trimmed_mean(frames: list[float]) -> float:
    p = np.sort(_clipped(frames))
    cut = len(p) // 4
    return float(p[cut:len(p) - cut].mean())


RULES = {
    "mean": lambda frames: float(np.mean(frames)),  # the recipe's (and scan's per-track) rule
    "median": lambda frames: float(np.median(frames)),
    "logit-mean": _logit_mean,
    "trimmed-mean": _trimmed_mean,  # the middle half of the frames
    "q25": lambda frames: float(np.quantile(frames, 0.25)),
    "vote": lambda frames: float(np.mean(np.asarray(frames) >= 0.5)) + 1e-3 * float(np.mean(frames)),
}


def fold_scores(run: Path, pair: str) -> dict[str, dict]:
    fold = run / "cv" / pair.replace(",", "_")
    for name in ("scores-last-step.json", "scores.json"):
        if (fold / name).is_file():
            return json.loads((fold / name).read_text())
    raise SystemExit(f"{run}: no stored scores for fold {pair} (run scripts/corpus_recipe.py cv first)")


def averaged(runs: list[Path], pair: str) -> dict[str, dict]:
    per_run = [fold_scores(run, pair) for run in runs]
    first = per_run[0]
    for other, run in zip(per_run[1:], runs[1:]):
        if set(other) != set(first):
            raise SystemExit(f"{run}: fold {pair} scored other videos than {runs[0]}")
    return {key: {**video, "frames": np.mean([scores[key]["frames"] for scores in per_run], axis=0).tolist()}
            for key, video in first.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--rules", nargs="+", choices=sorted(RULES), default=list(RULES))
    parser.add_argument("--config", type=Path, default=REPO / "configs/recipes/corpus-tail03.yaml",
                        help="recipe whose threshold rule and held-out sets apply (all recipes share them)")
    args = parser.parse_args()
    config = corpus_recipe.load_config(args.config)
    by_pair = {pair: averaged(args.runs, pair) for pair in corpus_recipe.PAIRS}
    print("runs:", " + ".join(str(run) for run in args.runs))
    for rule in args.rules:
        score = RULES[rule]
        rescored = {pair: {key: {**video, "p_fake": score(video["frames"])} for key, video in scores.items()}
                    for pair, scores in by_pair.items()}
        with contextlib.redirect_stdout(io.StringIO()):
            summary = corpus_recipe.cv_summary(config, rescored)
        folds = summary["folds"]
        aucs = ", ".join(f"{fold['video_auc']:.2f}" for fold in folds)
        test_reals = ", ".join(str(fold["unseen_test_reals_called_fake"]["called_fake"]) for fold in folds)
        print(f"{rule:>12}: fold video AUC {aucs} (mean {summary['mean_video_auc']:.3f}), "
              f"frame {summary['mean_frame_auc']:.3f}, test-half reals called fake {test_reals}, "
              f"fakes caught {summary['fakes_caught_at_calibrated']}, "
              f"cross-dataset {summary['mean_cross_dataset_auc']:.3f}")


if __name__ == "__main__":
    main()
