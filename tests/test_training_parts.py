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


def _face_like_maps(batch: int = 6, frames: int = 3, channels: int = 8, size: int = 7) -> torch.Tensor:
    """Maps (B, T, C, H, W) in which every clip has its own channel offsets and scales (a person's skin, light,
    camera) over a spatial pattern that varies between channels and frames."""
    generator = torch.Generator().manual_seed(3)
    pattern = torch.randn(batch, frames, channels, size, size, generator=generator)
    scale = 0.5 + torch.rand(batch, 1, channels, 1, 1, generator=generator)
    offset = 3 * torch.randn(batch, 1, channels, 1, 1, generator=generator)
    return (pattern * scale + offset).relu()  # post-ReLU maps, as the backbone's are


def _statistics(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return maps.mean(dim=(3, 4)), maps.std(dim=(3, 4), unbiased=False)


def test_channel_gain_jitter_scales_whole_maps_by_one_gain_per_channel_and_frame():
    from fakescope.training.cached_head import jitter_channel_gains

    maps = _face_like_maps() + 0.1  # strictly positive, so the ratio is defined everywhere
    torch.manual_seed(0)
    jittered = jitter_channel_gains(maps, 0.2)
    gains = jittered / maps
    per_map = gains.flatten(3)
    assert torch.allclose(per_map, per_map[..., :1].expand_as(per_map), atol=1e-5), "one gain over each map"
    assert per_map[..., 0].std() > 0.1 and abs(per_map[..., 0].mean() - 1) < 0.1
    assert not torch.allclose(per_map[:, :, 0, 0], per_map[:, :, 1, 0]), "channels draw their own gains"
    assert torch.equal(jitter_channel_gains(maps, 0.0), maps)


def test_mixing_channel_statistics_keeps_the_pattern_and_moves_each_clip_towards_another():
    from fakescope.training.cached_head import mix_channel_statistics

    maps = _face_like_maps()
    torch.manual_seed(1)
    mixed = mix_channel_statistics(maps, alpha=0.5)
    assert mixed.shape == maps.shape and mixed.dtype == maps.dtype
    mean, std = _statistics(maps)
    mixed_mean, mixed_std = _statistics(mixed)
    # Within each channel of each frame the spatial pattern is the same up to an affine change.
    standardise = lambda m, mu, sd: (m - mu[..., None, None]) / (sd[..., None, None] + 1e-6)  # noqa: E731
    varied = (std > 0.05)[..., None, None].expand_as(maps)  # not the (near-)constant maps ReLU leaves
    assert torch.allclose(standardise(mixed, mixed_mean, mixed_std)[varied], standardise(maps, mean, std)[varied],
                          atol=1e-3)
    moved = 0
    for clip in range(maps.shape[0]):
        # Its new statistics are one weight w of its own and (1 - w) of one other clip's, for all frames/channels.
        fits = []
        for other in range(maps.shape[0]):
            if other == clip:
                continue
            gap = mean[clip] - mean[other]
            weight = ((mixed_mean[clip] - mean[other]) * gap).sum() / (gap * gap).sum()
            predicted_mean = weight * mean[clip] + (1 - weight) * mean[other]
            predicted_std = weight * std[clip] + (1 - weight) * std[other]
            both_varied = (std[clip] > 0.05) & (std[other] > 0.05)
            if (torch.allclose(predicted_mean, mixed_mean[clip], atol=1e-3)
                    and torch.allclose(predicted_std[both_varied], mixed_std[clip][both_varied], atol=1e-3)):
                fits.append(float(weight))
        unchanged = torch.allclose(mixed[clip], maps[clip], atol=1e-4)
        assert fits or unchanged, f"clip {clip}: statistics are not a mix of its own and another clip's"
        assert all(-1e-4 <= w <= 1 + 1e-4 for w in fits)
        moved += not unchanged
    assert moved >= maps.shape[0] // 2, "most clips take on some of another clip's statistics"
    single = maps[:1]
    assert torch.equal(mix_channel_statistics(single), single), "nothing to mix with in a batch of one"
    assert mix_channel_statistics(maps.bfloat16()).dtype == torch.bfloat16


def _stored(clip_id: str, label: int, dataset: str = "ffpp", kind: str = "video", frames: int = 4):
    from fakescope.training.cached_head import SourcedClip
    from fakescope.training.feature_cache import CachedClip

    window, variant = clip_id.rsplit("/", 1)
    key = window.rsplit("@", 1)[0]
    method = "self-blended" if variant.startswith("sbi") else ("original" if label == 0 else "Deepfakes")
    return SourcedClip(Path("cache"), CachedClip(clip_id, key, label, variant, dataset, kind, method, "g", 0, 0,
                                                 frames))


def test_paired_batches_put_each_fake_beside_the_real_clip_it_was_made_from():
    from fakescope.training.cached_head import PairedBatchSampler, pair_partners

    clips = [
        _stored("orig/a.mp4@0/plain0", 0), _stored("orig/a.mp4@0/plain1", 0), _stored("orig/a.mp4@8/plain0", 0),
        _stored("orig/a.mp4@0/sbi0", 1), _stored("orig/a.mp4@8/sbi0", 1),
        _stored("fake/a_b.mp4@0/plain0", 1), _stored("fake/a_b.mp4@8/plain0", 1),
        _stored("fake/c_d.mp4@0/plain0", 1),  # its original is not among the clips
        _stored("orig/e.mp4@0/plain0", 0),
    ]
    source_of = {"fake/a_b.mp4": "orig/a.mp4", "fake/c_d.mp4": "orig/c.mp4"}
    partners = pair_partners(clips, source_of)
    assert partners == [[], [], [], [0, 1], [2], [0, 1], [2], [], []]
    assert pair_partners(clips)[5] == [], "without the originals' names a manipulated video has no partner"

    sampler = PairedBatchSampler(clips, batch_size=6, batches=200, source_of=source_of,
                                 generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 200 and all(len(b) == 6 for b in batches)
    unpaired_reals = set()
    for batch in batches:
        for (fake, fake_position), (real, real_position) in zip(batch[::2], batch[1::2]):
            assert clips[fake].clip.label == 1 and clips[real].clip.label == 0
            assert fake_position == real_position and 0.0 <= fake_position < 1.0, "both show the same moment"
            if partners[fake]:
                assert real in partners[fake]
            else:
                unpaired_reals.add(real)
    assert len(unpaired_reals) > 1, "a fake without a partner gets a real drawn from all of them"
    drawn = [clips[f].clip.method for b in batches for f, _ in b[::2]]
    assert 0.4 < drawn.count("self-blended") / len(drawn) < 0.6, "half the fakes self-blended, as unpaired"


def test_a_paired_position_picks_the_same_frame_of_clips_of_any_length():
    from fakescope.training.cached_head import CachedClips

    clips = [_stored("orig/a.mp4@0/plain0", 0, frames=4), _stored("orig/a.mp4@0/sbi0", 1, frames=3)]
    dataset = CachedClips(clips, single_frame=True)
    dataset._maps[Path("cache")] = lambda clip: torch.arange(float(clip.frames)).view(-1, 1, 1, 1)
    assert [float(dataset[(0, p)]["maps"]) for p in (0.0, 0.3, 0.5, 0.99)] == [0.0, 1.0, 2.0, 3.0]
    assert [float(dataset[(1, p)]["maps"]) for p in (0.0, 0.5, 0.99)] == [0.0, 1.0, 2.0]
    assert dataset[(1, 0.5)]["labels"].tolist() == [1]
    assert float(dataset[0]["maps"]) in {0.0, 1.0, 2.0, 3.0}, "a plain index still draws a frame"
