"""Clips of consecutive sampled face crops of one track, for training and validation."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.items import FAKE, REAL
from .augment import normalise, resize_clip
from .sbi import self_blend_clip


@dataclass
class TrackCrops:
    """The sampled crops of one face track of one video, in frame order."""

    key: str
    label: int
    method: str
    dataset: str
    crops: list[Path]
    frame_indices: list[int]


def tracks_from_index(records: Iterable, splits: Sequence[str] | None = None) -> list[TrackCrops]:
    """Group crop records into one track per video (its longest), optionally keeping only some splits."""
    by_track: dict[tuple[str, int], list] = defaultdict(list)
    for record in records:
        if splits is not None and record.split not in splits:
            continue
        by_track[(record.key, int(record.track_id))].append(record)
    longest: dict[str, list] = {}
    for (key, _), rows in by_track.items():
        if key not in longest or len(rows) > len(longest[key]):
            longest[key] = rows
    tracks = []
    for key in sorted(longest):
        rows = sorted(longest[key], key=lambda row: int(row.frame_index))
        first = rows[0]
        tracks.append(TrackCrops(key, int(first.label), first.method, first.dataset,
                                 [Path(row.crop) for row in rows], [int(row.frame_index) for row in rows]))
    return tracks


def read_crop(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read crop {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_clip_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 (H, W, 3) frames -> uint8 tensor (T, 3, H, W)."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class TrainClips(Dataset):
    """Random clips of ``length`` consecutive sampled crops. Index i names an entry (track, kind), where kind "sbi"
    turns a real track into a self-blended fake; the sampler decides how often each entry is drawn."""

    def __init__(self, tracks: list[TrackCrops], length: int, size: int, mean, std, transform=None,
                 sbi: bool = False, seed: int = 0) -> None:
        self.tracks = tracks
        self.length = length
        self.size = size
        self.mean, self.std = mean, std
        self.transform = transform
        self.entries: list[tuple[int, str]] = [(i, "plain") for i in range(len(tracks))]
        if sbi:
            self.entries += [(i, "sbi") for i, track in enumerate(tracks) if track.label == REAL]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.entries)

    def entry_label(self, index: int) -> int:
        track_index, kind = self.entries[index]
        return FAKE if kind == "sbi" else self.tracks[track_index].label

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        track_index, kind = self.entries[index]
        track = self.tracks[track_index]
        rng = random.Random()  # seeded per worker by Lightning's seed_everything(workers=True)
        count = len(track.crops)
        start = rng.randrange(max(1, count - self.length + 1))
        positions = [(start + step) % count for step in range(self.length)]  # short tracks loop
        frames = [read_crop(track.crops[p]) for p in positions]
        frames = [cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA)
                  if f.shape[0] != self.size else f for f in frames]
        label = track.label
        if kind == "sbi":
            frames = self_blend_clip(frames, np.random.default_rng(rng.getrandbits(64)))
            label = FAKE
        clip = to_clip_tensor(frames)
        clip = self.transform(clip) if self.transform is not None else resize_clip(clip, self.size)
        return {
            "clip": normalise(clip, self.mean, self.std),
            "labels": torch.full((self.length,), label, dtype=torch.long),
        }

    def sample_weights(self, sbi_fraction: float = 0.0) -> list[float]:
        """Sampling weights that balance real and fake clips; self-blended clips take ``sbi_fraction`` of fakes."""
        counts = defaultdict(int)
        kinds = []
        for track_index, kind in self.entries:
            name = "sbi" if kind == "sbi" else ("fake" if self.tracks[track_index].label == FAKE else "real")
            kinds.append(name)
            counts[name] += 1
        has_fake, has_sbi = counts["fake"] > 0, counts["sbi"] > 0
        share = {"real": 0.5, "fake": 0.5, "sbi": 0.0}
        if has_sbi:
            share["sbi"] = 0.5 * (sbi_fraction if has_fake else 1.0)
            share["fake"] = 0.5 - share["sbi"]
        return [share[name] / counts[name] for name in kinds]


class EvalClips(Dataset):
    """Every sampled crop of each track, in windows of ``length`` (the last one padded); deterministic."""

    def __init__(self, tracks: list[TrackCrops], length: int, size: int, mean, std) -> None:
        self.tracks = tracks
        self.length = length
        self.size = size
        self.mean, self.std = mean, std
        self.windows = [(t, start) for t, track in enumerate(tracks) for start in range(0, len(track.crops), length)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        track_index, start = self.windows[index]
        track = self.tracks[track_index]
        paths = track.crops[start : start + self.length]
        valid = len(paths)
        frames = [read_crop(path) for path in paths]
        frames += [frames[-1]] * (self.length - valid)
        clip = resize_clip(to_clip_tensor(frames), self.size)
        mask = torch.zeros(self.length, dtype=torch.bool)
        mask[:valid] = True
        return {
            "clip": normalise(clip, self.mean, self.std),
            "labels": torch.full((self.length,), track.label, dtype=torch.long),
            "valid": mask,
            "track": torch.tensor(track_index),
        }
