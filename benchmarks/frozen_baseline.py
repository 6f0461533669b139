"""Frozen-backbone baseline: ImageNet Xception features of the cached face crops + logistic regression.

The reference a trained detector must beat on the same identity-disjoint split. Reads a preprocess cache
(`fakescope preprocess`), fits on the train split's crops, scores each validation video by the mean of its frames:

    .venv/bin/python benchmarks/frozen_baseline.py --cache runs/cache/ffpp-mini-32 \
        --data "ffpp:../shared/data/ffpp-mini?holdout=585,599"
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))


@torch.inference_mode()
def crop_features(paths: list[Path], backbone_weights: Path, batch_size: int = 16) -> np.ndarray:
    """Globally pooled 2048-d ImageNet Xception features of 224x224 face crops."""
    from fakescope.models import create_backbone
    from fakescope.training.clips import read_crop

    backbone = create_backbone("legacy_xception", weights=backbone_weights, bn_eps=1e-3).eval()
    features = []
    for start in range(0, len(paths), batch_size):
        crops = np.stack([read_crop(p) for p in paths[start : start + batch_size]])
        batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
        batch = (batch - 0.5) / 0.5
        features.append(backbone.forward_features(batch).mean((2, 3)).numpy())
        print(f"  features {min(start + batch_size, len(paths))}/{len(paths)}", end="\r", flush=True)
    print()
    return np.concatenate(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--data", required=True, help="dataset spec whose splits decide train/val")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--backbone-weights", type=Path, default=SHARED / "weights/xception-imagenet-keras.safetensors")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fakescope.data import load_dataset
    from fakescope.data.preprocess import load_index
    from fakescope.evaluation.metrics import binary_metrics
    from fakescope.training.clips import tracks_from_index

    items = load_dataset(args.data)
    split_of = {str(item.path): item.split for item in items}
    records = [r for r in load_index(args.cache) if str(r.path) in split_of]
    train = tracks_from_index(r for r in records if split_of[str(r.path)] == args.train_split)
    val = tracks_from_index(r for r in records if split_of[str(r.path)] == args.val_split)
    print(f"train: {len(train)} videos, val: {len(val)} videos")

    def stack(tracks):
        paths = [p for t in tracks for p in t.crops]
        labels = np.concatenate([[t.label] * len(t.crops) for t in tracks])
        owner = np.concatenate([[i] * len(t.crops) for i, t in enumerate(tracks)])
        return paths, labels, owner

    train_paths, train_labels, _ = stack(train)
    val_paths, val_labels, val_owner = stack(val)
    train_x = crop_features(train_paths, args.backbone_weights)
    val_x = crop_features(val_paths, args.backbone_weights)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    classifier.fit(train_x, train_labels)
    frame_p = classifier.predict_proba(val_x)[:, 1]
    video_p = np.array([frame_p[val_owner == i].mean() for i in range(len(val))])
    video_labels = np.array([t.label for t in val])
    results = {
        "baseline": "frozen ImageNet Xception (global-pooled) + logistic regression",
        "train_videos": len(train), "val_videos": len(val),
        "frame_level": binary_metrics(val_labels, frame_p),
        "video_level": binary_metrics(video_labels, video_p),
    }
    print(f"frame-level ROC-AUC {results['frame_level']['auc']:.4f}, "
          f"video-level ROC-AUC {results['video_level']['auc']:.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
