"""Which Xception stage should feed the design's head? Leave-one-YouTube-pair-out AUC of the head on frozen features.

For each face crop of a preprocess cache (and three self-blended variants of each real crop), the frozen ImageNet
Xception is run up to STAGE once; then, for each of the three ffpp-mini folds, the design's head (convs 128/256,
LSTM 256, dense 512/256) is trained on clips of those feature maps (horizontal flips only) and scored on the held-out
pair's videos (mean p_fake of 32 frames). Prints per-fold and mean video- and frame-level ROC-AUC.

    .venv/bin/python benchmarks/backbone_stage_cv.py --stage block8                # the shipped xception_mid_lstm
    .venv/bin/python benchmarks/backbone_stage_cv.py --stage block8 --pool global  # ... pooled over the whole crop
    .venv/bin/python benchmarks/backbone_stage_cv.py --stage act4 --pool global    # the whole backbone (xception_lstm)

About 3 minutes of feature extraction and 3 of training per stage on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
PAIRS = {"183": 0, "253": 0, "469": 1, "481": 1, "585": 2, "599": 2}


def fold_of(key: str) -> int:
    """The YouTube pair a video belongs to (-1: actors and DeepFakeDetection, always in training)."""
    match = re.search(r"youtube/c23/videos/(\d{3})\.mp4$|/(\d{3})_\d{3}\.mp4$", key)
    if match is None or "DeepFakeDetection" in key:
        return -1
    return PAIRS[match.group(1) or match.group(2)]


@torch.inference_mode()
def extract(cache: Path, stage: str, sbi_variants: int, seed: int):
    from fakescope.data.preprocess import load_index
    from fakescope.models import create_backbone
    from fakescope.training.clips import read_crop, tracks_from_index
    from fakescope.training.sbi import SelfBlender

    backbone = create_backbone("legacy_xception", weights=SHARED / "weights/xception-imagenet-keras.safetensors",
                               bn_eps=1e-3, stage=stage).eval()

    def maps(frames: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return backbone.forward_features(batch).to(torch.float16)

    rng = np.random.default_rng(seed)
    tracks = tracks_from_index(load_index(cache))
    plain, blended = [], []
    for number, track in enumerate(tracks, 1):
        frames = [read_crop(path) for path in track.crops]
        plain.append(maps(frames))
        variants = []
        if track.label == 0:
            for _ in range(sbi_variants):
                mixed = []
                for start in range(0, len(frames), 4):  # one blend per 4-frame clip, as in training
                    blender = SelfBlender(frames[0].shape[0], rng)
                    mixed += [blender(frame) for frame in frames[start : start + 4]]
                variants.append(maps(mixed))
        blended.append(variants)
        print(f"  features {number}/{len(tracks)}", end="\r", flush=True)
    print()
    return tracks, plain, blended


def train_head(stage_channels: int, tracks, plain, blended, train_ids, steps: int, sbi_fraction: float, seed: int,
               pool: str):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = DesignHead(stage_channels, pool)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    real = [i for i in train_ids if tracks[i].label == 0]
    fake = [i for i in train_ids if tracks[i].label == 1]
    length, batch = 4, 8
    head.train()
    for _ in range(steps):
        clips, labels = [], []
        for slot in range(batch):
            if slot % 2 == 0:
                source, label = plain[rng.choice(real)], 0
            elif rng.random() < sbi_fraction:
                variants = blended[rng.choice(real)]
                source, label = variants[rng.integers(len(variants))], 1
            else:
                source, label = plain[rng.choice(fake)], 1
            start = rng.integers(0, len(source) - length + 1)
            clip = source[start : start + length].float()
            clips.append(clip.flip(-1) if rng.random() < 0.5 else clip)
            labels.append(label)
        logits = head(torch.stack(clips))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                 torch.tensor(labels).repeat_interleave(length))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return head.eval()


class DesignHead(torch.nn.Module):
    """The detector's layers after the backbone, built from the registered xception_mid_lstm config."""

    def __init__(self, channels: int, pool: str) -> None:
        super().__init__()
        from fakescope.models import create_model

        model = create_model("xception_mid_lstm", pool=pool)
        if channels != model.backbone.num_features:
            from fakescope.models.temporal_detector import _conv_bn_relu

            model.convs[0] = _conv_bn_relu(channels, model.config.conv_channels[0])
        self.convs, self.pool, self.rnn, self.head = model.convs, model.pool, model.rnn, model.head

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        batch, steps = maps.shape[:2]
        features = self.pool(self.convs(maps.flatten(0, 1)))
        sequence, _ = self.rnn(features.view(batch, steps, -1))
        return self.head(sequence)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=REPO / "runs/cache/ffpp-mini-32",
                        help="a `fakescope preprocess` cache of all ffpp-mini videos")
    parser.add_argument("--stage", default="block8", help="legacy_xception stage: block5, block8, block11, act4...")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sbi-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", choices=["face", "global"], default="face",
                        help="average the conv map over the face ellipse (shipped) or the whole crop")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    from sklearn.metrics import roc_auc_score

    tracks, plain, blended = extract(args.cache, args.stage, sbi_variants=3, seed=args.seed)
    folds = np.array([fold_of(track.key) for track in tracks])
    video_aucs, frame_aucs = [], []
    for fold in range(3):
        train_ids = [i for i in range(len(tracks)) if folds[i] != fold]
        test_ids = [i for i in range(len(tracks)) if folds[i] == fold]
        head = train_head(plain[0].shape[1], tracks, plain, blended, train_ids, args.steps, args.sbi_fraction,
                          args.seed, args.pool)
        video_scores, frame_scores, frame_labels = [], [], []
        with torch.no_grad():
            for i in test_ids:
                p_fake = head(plain[i].float()[None]).softmax(-1)[0, :, 1].numpy()
                video_scores.append(p_fake.mean())
                frame_scores += p_fake.tolist()
                frame_labels += [tracks[i].label] * len(p_fake)
        labels = [tracks[i].label for i in test_ids]
        video_aucs.append(roc_auc_score(labels, video_scores))
        frame_aucs.append(roc_auc_score(frame_labels, frame_scores))
        print(f"fold {fold} ({len(test_ids)} videos held out): video AUC {video_aucs[-1]:.3f}, "
              f"frame AUC {frame_aucs[-1]:.3f}", flush=True)
    print(f"stage {args.stage}, {args.pool} pool: mean video AUC {np.mean(video_aucs):.3f}, mean frame AUC {np.mean(frame_aucs):.3f}")


if __name__ == "__main__":
    main()
