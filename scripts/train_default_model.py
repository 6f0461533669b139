"""Reproduce the shipped weights: cross-validate the recipe, train the final model, package it.

    .venv/bin/python scripts/train_default_model.py cv        # 3 folds, one YouTube pair held out each
    .venv/bin/python scripts/train_default_model.py final     # every video, threshold from the cross-validation
    .venv/bin/python scripts/train_default_model.py package   # -> src/fakescope/weights/ (fp16 + sha256 record)
    .venv/bin/python scripts/train_default_model.py all       # the three in turn

Each step runs `fakescope train --config configs/default-model.yaml` with overrides, so the recipe lives in that
config alone. A fold whose runs/cv/<pair>/train_summary.json exists is not trained again. Extra SECTION.KEY=VALUE
arguments go to every training run (e.g. trainer.accelerator=gpu trainer.precision=16-mixed on a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
PAIRS = ("183,253", "469,481", "585,599")


def run_training(config: Path, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "fakescope.cli.main", "train", "--config", str(config), *overrides]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def cross_validate(args: argparse.Namespace) -> dict:
    from fakescope.evaluation.metrics import binary_metrics, choose_threshold

    data = SHARED / "data/ffpp-mini"
    folds = []
    for pair in PAIRS:
        out = args.runs / "cv" / pair.replace(",", "_")
        summary_path = out / "train_summary.json"
        if not summary_path.is_file():
            resume = ["--resume", "last"] if (out / "checkpoints" / "last.ckpt").is_file() else []
            run_training(args.config, [*resume, f'data.train=["ffpp:{data}?holdout={pair}"]',
                                       f"trainer.out_dir={out}", *args.overrides])
        summary = json.loads(summary_path.read_text())
        videos = summary["val_videos"]
        labels = np.array([v["label"] for v in videos])
        scores = np.array([v["p_fake"] for v in videos])
        folds.append({"held_out": pair, "videos": len(videos), "real": int((labels == 0).sum()),
                      "video_auc": summary["video_auc"], "frame_auc": summary["frame_auc"],
                      "fold_threshold": summary["threshold"], "val_videos": videos})
    labels = np.array([v["label"] for f in folds for v in f["val_videos"]])
    scores = np.array([v["p_fake"] for f in folds for v in f["val_videos"]])
    threshold = float(choose_threshold(labels, scores, rule="youden"))
    for fold in folds:
        fold_labels = np.array([v["label"] for v in fold["val_videos"]])
        fold_scores = np.array([v["p_fake"] for v in fold["val_videos"]])
        fold["at_cv_threshold"] = binary_metrics(fold_labels, fold_scores, threshold=threshold)
    result = {
        "recipe": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO) else str(args.config),
        "folds": folds,
        "mean_video_auc": float(np.mean([f["video_auc"] for f in folds])),
        "mean_frame_auc": float(np.mean([f["frame_auc"] for f in folds])),
        "pooled_video_auc": float(binary_metrics(labels, scores)["auc"]),
        "threshold": threshold,
        "threshold_rule": "youden on the pooled out-of-fold video scores",
        "pooled_at_threshold": binary_metrics(labels, scores, threshold=threshold),
    }
    (args.runs / "cv").mkdir(parents=True, exist_ok=True)
    (args.runs / "cv" / "summary.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"cross-validation: video AUC per fold {[round(f['video_auc'], 3) for f in folds]}, "
          f"mean {result['mean_video_auc']:.3f}; frame AUC mean {result['mean_frame_auc']:.3f}; "
          f"threshold {threshold:.3f}")
    return result


def train_final(args: argparse.Namespace) -> Path:
    summary = json.loads((args.runs / "cv" / "summary.json").read_text())
    data = SHARED / "data/ffpp-mini"
    out = args.runs / "default-model"
    run_training(args.config, [f'data.train=["ffpp:{data}"]', "data.train_split=null", "data.validation=false",
                               f"threshold={summary['threshold']}", f"trainer.out_dir={out}",
                               f"seed={args.final_seed}", *args.overrides])
    return out / "model.safetensors"


def package(args: argparse.Namespace) -> None:
    from fakescope.weights import package_weights, read_record, weights_dir

    summary = json.loads((args.runs / "cv" / "summary.json").read_text())
    target = REPO / "src/fakescope/weights"
    if (target / "fakescope-default.safetensors").is_file() and not args.replace:
        current = read_record(target).get("cross_validation", {}).get("mean_video_auc", 0.0)
        if summary["mean_video_auc"] <= current:
            sys.exit(f"the shipped weights' recipe scored {current:.3f} mean video AUC, this one "
                     f"{summary['mean_video_auc']:.3f}: not replacing them (--replace to force)")
    cross_validation = {k: summary[k] for k in ("recipe", "mean_video_auc", "mean_frame_auc", "pooled_video_auc",
                                                "threshold", "threshold_rule")}
    cross_validation["folds"] = [{k: f[k] for k in ("held_out", "videos", "video_auc", "frame_auc")}
                                 for f in summary["folds"]]
    record = package_weights(args.runs / "default-model" / "model.safetensors", target,
                             extra={"cross_validation": cross_validation})
    print(f"packaged {record['bytes'] / 1e6:.1f} MB, sha256 {record['sha256']} into {weights_dir()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["cv", "final", "package", "all"])
    parser.add_argument("overrides", nargs="*", help="SECTION.KEY=VALUE for every training run")
    parser.add_argument("--config", type=Path, default=REPO / "configs/default-model.yaml")
    parser.add_argument("--runs", type=Path, default=REPO / "runs")
    parser.add_argument("--replace", action="store_true", help="replace the shipped weights even if not better")
    # The shipped run used seed 43: the seed-42 run's scores sat lower than the fold models' on their own training
    # videos (real ones at 0.10-0.14 against 0.15-0.27), so the cross-validated threshold did not fit it
    # (docs/MODEL_CARD.md).
    parser.add_argument("--final-seed", type=int, default=43, help="seed of the final run (default: %(default)s)")
    args = parser.parse_args()
    args.config = args.config.resolve()
    args.runs = args.runs.resolve()
    if args.step in ("cv", "all"):
        cross_validate(args)
    if args.step in ("final", "all"):
        train_final(args)
    if args.step in ("package", "all"):
        package(args)


if __name__ == "__main__":
    main()
