"""Training parts: config and overrides, clip-consistent augmentation, self-blended fakes, clip sampling."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clips import face_image
from fakescope.training import TrainConfig
from fakescope.training.augment import build_clip_augmentation
from fakescope.training.clips import EvalClips, TrainClips, tracks_from_index
from fakescope.training.config import AugmentSection
from fakescope.training.sbi import SelfBlender, face_mask, self_blend_clip

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def test_config_loads_yaml_with_overrides_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ntrainer: {max_epochs: 4}\ndata: {augment: {jpeg: [70, 90]}}\n")
    config = TrainConfig.load(path, ["trainer.max_epochs=2", "optim.lr=3e-4", "model.overrides={rnn: gru}"])
    assert config.seed == 3 and config.trainer.max_epochs == 2 and config.optim.lr == pytest.approx(3e-4)
    assert config.data.augment.jpeg == (70, 90) and config.model.overrides == {"rnn": "gru"}
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown config key.*trainer.max_epoch"):
        TrainConfig.load(path, ["trainer.max_epoch=2"])
    with pytest.raises(ValueError, match="section.key=value"):
        TrainConfig.load(path, ["nonsense"])


def test_shipped_configs_parse():
    for path in Path(__file__).resolve().parents[1].glob("configs/*.yaml"):
        TrainConfig.load(path)


def _face_clip(length: int = 6, size: int = 96) -> torch.Tensor:
    face = cv2.cvtColor(cv2.resize(face_image(), (size, size)), cv2.COLOR_BGR2RGB)
    frames = [np.roll(face, shift, axis=1) for shift in range(length)]  # a slowly moving face
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def test_augmentation_draws_once_per_clip():
    torch.manual_seed(0)
    augment = build_clip_augmentation(AugmentSection(), size=64)
    same = _face_clip()[:1].repeat(6, 1, 1, 1)
    out = augment(same)
    assert out.shape == (6, 3, 64, 64) and out.dtype == torch.uint8
    assert all(torch.equal(out[0], frame) for frame in out), "identical frames must stay identical"
    # ...while two calls differ (the augmentation is random per clip).
    assert not torch.equal(augment(same)[0], augment(same)[0])
    # A horizontal flip flips every frame of the clip or none.
    flip_only = build_clip_augmentation(AugmentSection(crop_scale=(1.0, 1.0), flip=1.0, rotation=0, color_jitter=0,
                                                       blur=0, jpeg=None), size=96)
    clip = _face_clip()
    flipped = flip_only(clip)
    assert torch.equal(flipped, clip.flip(-1)) or torch.allclose(flipped.float(), clip.flip(-1).float(), atol=2)


def test_self_blending_changes_the_face_but_not_the_border():
    rng = np.random.default_rng(0)
    clip = [f.permute(1, 2, 0).numpy().copy() for f in _face_clip(size=128)]
    blended = self_blend_clip(clip, rng)
    mask = face_mask(128, np.random.default_rng(1))
    assert mask.max() > 0.8 and mask[0, 0] == 0.0 and mask[64, 64] > 0.5
    centre_change = np.abs(blended[0][40:90, 40:90].astype(int) - clip[0][40:90, 40:90]).mean()
    border_change = np.abs(blended[0][:8].astype(int) - clip[0][:8]).mean()
    assert centre_change > 2.0 and border_change < 0.5
    # The same blend for every frame: a static clip stays static.
    still = [clip[0]] * 4
    blender_rng = np.random.default_rng(5)
    out = self_blend_clip(still, blender_rng)
    assert all(np.array_equal(out[0], frame) for frame in out)
    assert isinstance(SelfBlender(128, np.random.default_rng(2))(clip[0]), np.ndarray)


@dataclass
class _Row:
    key: str
    path: str
    label: int
    method: str
    dataset: str
    split: str
    frame_index: int
    track_id: int
    crop: str


def _write_track(folder: Path, key: str, label: int, count: int, split: str, track: int = 0) -> list[_Row]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    face = cv2.resize(face_image(), (72, 72))
    for index in range(count):
        path = folder / f"{key}_{track}_{index}.jpg"
        image = face.copy()
        cv2.putText(image, str(index), (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
        cv2.imwrite(str(path), image)
        rows.append(_Row(key, f"/videos/{key}.mp4", label, "original" if label == 0 else "Deepfakes", "ffpp", split,
                         index * 10, track, str(path)))
    return rows


def test_clips_are_consecutive_frames_of_the_longest_track(tmp_path):
    rows = _write_track(tmp_path, "a", 0, 12, "train") + _write_track(tmp_path, "a", 0, 3, "train", track=1)
    rows += _write_track(tmp_path, "b", 1, 5, "train") + _write_track(tmp_path, "c", 1, 9, "val")
    tracks = tracks_from_index(rows, splits=["train"])
    assert [(t.key, len(t.crops)) for t in tracks] == [("a", 12), ("b", 5)]
    assert tracks[0].frame_indices == sorted(tracks[0].frame_indices)
    dataset = TrainClips(tracks, length=4, size=64, mean=MEAN, std=STD, sbi=True)
    assert len(dataset) == 3  # a, b, and a self-blended copy of the real track a
    assert [dataset.entry_label(i) for i in range(3)] == [0, 1, 1]
    item = dataset[0]
    assert item["clip"].shape == (4, 3, 64, 64) and item["labels"].tolist() == [0, 0, 0, 0]
    assert dataset[2]["labels"].tolist() == [1, 1, 1, 1]
    # Real and fake are balanced; self-blended clips take their share of the fakes.
    weights = dataset.sample_weights(sbi_fraction=0.3)
    assert weights[0] == pytest.approx(0.5) and weights[1] + weights[2] == pytest.approx(0.5)
    assert weights[2] == pytest.approx(0.15)


def test_eval_clips_cover_every_frame_once(tmp_path):
    rows = _write_track(tmp_path, "c", 1, 10, "val")
    dataset = EvalClips(tracks_from_index(rows), length=4, size=64, mean=MEAN, std=STD)
    assert len(dataset) == 3
    masks = [dataset[i]["valid"] for i in range(3)]
    assert sum(int(m.sum()) for m in masks) == 10
    assert masks[-1].tolist() == [True, True, False, False]
