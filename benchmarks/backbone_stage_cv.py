"""Which Xception stage should feed the design's head, and which recipe trains it? Leave-one-YouTube-pair-out AUC
of the head on frozen features: a fast stand-in for the full cross-validation of scripts/train_default_model.py.

For each face crop of a preprocess cache (and self-blended variants of each real crop), the frozen ImageNet
Xception is run up to STAGE once; then, for each of the three ffpp-mini folds, the design's head (convs 128/256,
LSTM 256, dense 512/256) is trained on clips of those feature maps and scored on the held-out pair's plain videos
(mean p_fake of 32 frames). Prints per-fold and mean video- and frame-level ROC-AUC, per seed and over seeds.

    .venv/bin/python benchmarks/backbone_stage_cv.py --stage block8                # the shipped xception_mid_lstm
    .venv/bin/python benchmarks/backbone_stage_cv.py --stage block8 --pool global  # ... pooled over the whole crop
    .venv/bin/python benchmarks/backbone_stage_cv.py --stage act4 --pool global    # the whole backbone (xception_lstm)
    .venv/bin/python benchmarks/backbone_stage_cv.py --sbi-fraction 1.0            # self-blended fakes only
    .venv/bin/python benchmarks/backbone_stage_cv.py --augment strong --seeds 2    # heavier colour/blur/JPEG

Training clips get horizontal flips only, unless --augment recipe|strong: then each clip comes from one of
--augment-copies feature passes over crops augmented clip by clip (as `fakescope train` does), the self-blended
fakes blended first, then augmented. About 3 minutes of feature extraction (per augmented copy) and 3 of training
per seed on 2 CPU cores.
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


RECIPE = REPO / "configs/default-model.yaml"
AUGMENTATIONS = ("recipe", "strong")  # the shipped recipe's, or heavier colour jitter, blur and JPEG


def augmentation_settings(name: str):
    """The AugmentSection of ``name``, without flips: those are drawn at training time, on the feature maps."""
    import dataclasses

    from fakescope.training.config import AugmentSection, TrainConfig

    if name == "recipe":
        return dataclasses.replace(TrainConfig.load(RECIPE).data.augment, flip=0.0)
    return AugmentSection(crop_scale=(0.8, 1.0), flip=0.0, rotation=10.0, color_jitter=0.3, blur=0.3, jpeg=(40, 100))


@torch.inference_mode()
def extract(cache: Path, stage: str, sbi_variants: int, seed: int, augment: str = "none", copies: int = 1):
    """Plain maps of every track (for scoring), training copies (augmented when ``augment`` is set) and self-blended
    variants of the real tracks."""
    from fakescope.data.preprocess import load_index
    from fakescope.models import create_backbone
    from fakescope.training.augment import build_clip_augmentation
    from fakescope.training.clips import read_crop, to_clip_tensor, tracks_from_index
    from fakescope.training.sbi import self_blend_clip

    backbone = create_backbone("legacy_xception", weights=SHARED / "weights/xception-imagenet-keras.safetensors",
                               bn_eps=1e-3, stage=stage).eval()

    def maps(frames: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return backbone.forward_features(batch).to(torch.float16)

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    transform = None if augment == "none" else build_clip_augmentation(augmentation_settings(augment), 224)

    def clipwise(frames: list[np.ndarray], blend: bool) -> torch.Tensor:
        """Maps of ``frames`` handled 4 at a time, as training clips are: one blend and one augmentation per clip."""
        parts = []
        for start in range(0, len(frames), 4):
            clip = frames[start : start + 4]
            if blend:
                clip = self_blend_clip(clip, rng)
            if transform is not None:
                clip = list(transform(to_clip_tensor(clip)).permute(0, 2, 3, 1).numpy())
            parts.append(clip)
        return maps([frame for part in parts for frame in part])

    tracks = tracks_from_index(load_index(cache))
    plain, training, blended = [], [], []
    for number, track in enumerate(tracks, 1):
        frames = [read_crop(path) for path in track.crops]
        plain.append(maps(frames))
        training.append([plain[-1]] if transform is None else [clipwise(frames, False) for _ in range(copies)])
        variants = sbi_variants if transform is None else copies
        blended.append([clipwise(frames, True) for _ in range(variants)] if track.label == 0 else [])
        print(f"  features {number}/{len(tracks)}", end="\r", flush=True)
    print()
    return tracks, plain, training, blended


def train_head(stage_channels: int, tracks, training, blended, train_ids, steps: int, sbi_fraction: float, seed: int,
               pool: str, aligned: bool):
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
                copies, label = training[rng.choice(real)], 0
            elif rng.random() < sbi_fraction:
                copies, label = blended[rng.choice(real)], 1
            else:
                copies, label = training[rng.choice(fake)], 1
            source = copies[rng.integers(len(copies))]
            if aligned:  # one augmentation per 4-frame clip: never straddle two
                start = rng.integers(0, (len(source) - length) // length + 1) * length
            else:
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
            from fakescope.models.temporal_model import _conv_bn_relu

            model.convs[0] = _conv_bn_relu(channels, model.config.conv_channels[0])
        self.convs, self.pool, self.rnn, self.head = model.convs, model.pool, model.rnn, model.head

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        batch, steps = maps.shape[:2]
        features = self.pool(self.convs(maps.flatten(0, 1)))
        sequence, _ = self.rnn(features.view(batch, steps, -1))
        return self.head(sequence)


def cross_validate(tracks, plain, training, blended, args, seed: int) -> tuple[list[float], list[float]]:
    """Per-fold video and frame ROC-AUC of a head trained with ``seed``."""
    from sklearn.metrics import roc_auc_score

    folds = np.array([fold_of(track.key) for track in tracks])
    video_aucs, frame_aucs = [], []
    for fold in range(3):
        train_ids = [i for i in range(len(tracks)) if folds[i] != fold]
        test_ids = [i for i in range(len(tracks)) if folds[i] == fold]
        head = train_head(plain[0].shape[1], tracks, training, blended, train_ids, args.steps, args.sbi_fraction,
                          seed, args.pool, aligned=args.augment != "none")
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
        reals = ", ".join(f"{tracks[i].key.rsplit('/', 1)[-1]} {video_scores[n]:.2f}"
                          for n, i in enumerate(test_ids) if tracks[i].label == 0)
        print(f"seed {seed} fold {fold} ({len(test_ids)} videos held out): video AUC {video_aucs[-1]:.3f}, "
              f"frame AUC {frame_aucs[-1]:.3f}; held-out reals' p_fake: {reals}", flush=True)
    return video_aucs, frame_aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=REPO / "runs/cache/ffpp-mini-32",
                        help="a `fakescope preprocess` cache of all ffpp-mini videos")
    parser.add_argument("--stage", default="block8", help="legacy_xception stage: block5, block8, block11, act4...")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sbi-fraction", type=float, default=0.3, help="share of training fakes that are self-blended")
    parser.add_argument("--seed", type=int, default=0, help="seed of the features and of the first head")
    parser.add_argument("--seeds", type=int, default=1, help="heads trained per fold, with seeds SEED, SEED+1, ...")
    parser.add_argument("--pool", choices=["face", "global"], default="face",
                        help="average the conv map over the face ellipse (shipped) or the whole crop")
    parser.add_argument("--augment", choices=["none", *AUGMENTATIONS], default="none",
                        help="augment the training crops clip by clip before the backbone (default: flips only)")
    parser.add_argument("--augment-copies", type=int, default=3, help="augmented feature passes per video")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    tracks, plain, training, blended = extract(args.cache, args.stage, sbi_variants=3, seed=args.seed,
                                               augment=args.augment, copies=args.augment_copies)
    per_seed = []
    for seed in range(args.seed, args.seed + args.seeds):
        video_aucs, frame_aucs = cross_validate(tracks, plain, training, blended, args, seed)
        per_seed.append((np.mean(video_aucs), np.mean(frame_aucs)))
    setting = (f"stage {args.stage}, {args.pool} pool, SBI {args.sbi_fraction:g}, augment {args.augment}, "
               f"{args.steps} steps")
    for seed, (video, frame) in zip(range(args.seed, args.seed + args.seeds), per_seed):
        print(f"{setting}, seed {seed}: mean video AUC {video:.3f}, mean frame AUC {frame:.3f}")
    if args.seeds > 1:
        videos, frames = np.array(per_seed).T
        print(f"{setting}, {args.seeds} seeds: mean video AUC {videos.mean():.3f} (range {videos.min():.3f}-"
              f"{videos.max():.3f}), mean frame AUC {frames.mean():.3f}")


if __name__ == "__main__":
    main()
