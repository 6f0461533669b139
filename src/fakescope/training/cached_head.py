"""Training the part of a model after its frozen stages on cached backbone maps (``feature_cache``), with Lightning.

The maps are those of the backbone's last stage, or of an earlier one: then the stages after it run at every step
and are fine-tuned (``cache_stage``). Still images are one-frame clips and videos clips of several frames, so each
step takes one batch of each kind: both are balanced between real and fake, and the fakes of the videos between
manipulated videos and self-blended ones. The result is a complete ``TemporalDeepfakeModel`` (its frozen stages
the weights the cache was made with), saved as an ordinary checkpoint.
"""
from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.utilities import CombinedLoader
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from ..data.items import FAKE, STILL_KINDS
from ..models.temporal_model import TemporalDeepfakeModel
from .feature_cache import CachedClip, CacheMaps


@dataclass(frozen=True)
class SourcedClip:
    """A cached clip and the cache it lives in."""

    cache: Path
    clip: CachedClip


class CachedClips(Dataset):
    """(maps (T, C, H, W), labels (T,)) of cached clips. An index may come with a position in [0, 1): the frame a
    single-frame dataset takes, so that two clips of one pair show the same moment (``PairedBatchSampler``)."""

    def __init__(self, clips: Sequence[SourcedClip], single_frame: bool = False) -> None:
        self.clips = list(clips)
        self.single_frame = single_frame  # one random frame of each clip (a frame-level model)
        self._maps: dict[Path, CacheMaps] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int | tuple[int, float]) -> dict[str, torch.Tensor]:
        index, position = index if isinstance(index, tuple) else (index, None)
        item = self.clips[index]
        maps = self._maps.get(item.cache)
        if maps is None:
            maps = self._maps[item.cache] = CacheMaps(item.cache)
        frames = maps(item.clip)
        if self.single_frame and frames.shape[0] > 1:
            count = frames.shape[0]
            pick = random.randrange(count) if position is None else min(int(position * count), count - 1)
            frames = frames[pick : pick + 1]
        return {"maps": frames, "labels": torch.full((frames.shape[0],), item.clip.label, dtype=torch.long)}


def jitter_channel_gains(maps: torch.Tensor, strength: float) -> torch.Tensor:
    """Scale each channel of each frame's map (B, T, C, H, W) by its own random gain 1 + ``strength`` N(0, 1),
    the same over the whole map: a shift of the whole face's channel statistics, as skin, light and camera make."""
    return maps * (1 + strength * torch.randn_like(maps[:, :, :, :1, :1]))


def mix_channel_statistics(maps: torch.Tensor, alpha: float = 0.1, eps: float = 1e-6) -> torch.Tensor:
    """MixStyle on maps (B, T, C, H, W): each clip's per-frame channel means and deviations (over the map) are
    moved towards those of another clip of the batch, by a weight drawn from Beta(alpha, alpha) per clip, the same
    for all of its frames; the spatial pattern within each channel is kept. Labels are left as they are: the
    statistics of whole faces are what differ between people, the pattern is where blending leaves its trace."""
    batch = maps.shape[0]
    if batch < 2:
        return maps
    values = maps.float()
    mean = values.mean(dim=(3, 4), keepdim=True)
    std = (values.var(dim=(3, 4), keepdim=True) + eps).sqrt()
    weight = torch.distributions.Beta(alpha, alpha).sample((batch, 1, 1, 1, 1)).to(values.device)
    other = torch.randperm(batch, device=values.device)
    mixed_mean = weight * mean + (1 - weight) * mean[other]
    mixed_std = weight * std + (1 - weight) * std[other]
    return ((values - mean) / std * mixed_std + mixed_mean).to(maps.dtype)


def balanced_weights(clips: Sequence[SourcedClip], sbi_share_of_fakes: float = 0.5) -> list[float]:
    """Sampling weights: half real, half fake; among fakes, self-blended ones take ``sbi_share_of_fakes`` where
    both kinds exist. Within a class each dataset counts equally, so a big photo set does not drown a small one."""
    def category(clip: CachedClip) -> str:
        if clip.label != FAKE:
            return "real"
        return "sbi" if clip.variant.startswith("sbi") else "fake"

    per_category: dict[str, Counter[str]] = defaultdict(Counter)
    for item in clips:
        per_category[category(item.clip)][item.clip.dataset] += 1
    share = {"real": 0.5, "fake": 0.5, "sbi": 0.0}
    if per_category["sbi"]:
        share["sbi"] = 0.5 * (sbi_share_of_fakes if per_category["fake"] else 1.0)
        share["fake"] = 0.5 - share["sbi"]
    weights = []
    for item in clips:
        name = category(item.clip)
        datasets = per_category[name]
        weights.append(share[name] / len(datasets) / datasets[item.clip.dataset])
    return weights


def window_start(clip: CachedClip) -> int:
    """The first frame of a clip's window in its video (clip ids are ``key@start/variant``): with the key, which
    frames a clip holds, whatever its variant."""
    return int(clip.clip_id.rsplit("/", 1)[0].rsplit("@", 1)[1])


def pair_partners(clips: Sequence[SourcedClip], source_of: Mapping[str, str] | None = None) -> list[list[int]]:
    """For each fake clip, the indices of the real clips it was made from, at the same frames: a self-blended
    variant's own clip as stored unblended; a manipulated video's original (``source_of``: fake key -> original
    key, as FaceForensics++ names them) at the same window, for the two are frame-aligned. Empty for reals and where
    the partner is not among ``clips`` (an original held out, or never shipped)."""
    reals: dict[tuple[Path, str, int], list[int]] = defaultdict(list)
    for index, item in enumerate(clips):
        if item.clip.label != FAKE:
            reals[(item.cache, item.clip.key, window_start(item.clip))].append(index)
    partners = []
    for item in clips:
        clip = item.clip
        original = None
        if clip.label == FAKE:
            original = clip.key if clip.variant.startswith("sbi") else (source_of or {}).get(clip.key)
        partners.append(list(reals.get((item.cache, original, window_start(clip)), [])) if original else [])
    return partners


class PairedBatchSampler(Sampler[list[tuple[int, float]]]):
    """Batches of real/fake pairs. Half of each batch are fakes drawn with ``balanced_weights``; each comes with one
    of its ``pair_partners`` at the same frame position (a fake without one, with a real drawn with those weights).
    The person, the light and the camera are then the same on both sides of most pairs, so only the manipulation
    tells them apart: in independent draws, who is in the picture can correlate with the label by chance."""

    def __init__(self, clips: Sequence[SourcedClip], batch_size: int, batches: int,
                 sbi_share_of_fakes: float = 0.5, source_of: Mapping[str, str] | None = None,
                 generator: torch.Generator | None = None) -> None:
        if batch_size < 2:
            raise ValueError("a paired batch needs room for at least one pair")
        weights = torch.tensor(balanced_weights(clips, sbi_share_of_fakes), dtype=torch.double)
        self.fakes = torch.tensor([i for i, c in enumerate(clips) if c.clip.label == FAKE])
        self.reals = torch.tensor([i for i, c in enumerate(clips) if c.clip.label != FAKE])
        if not len(self.fakes) or not len(self.reals):
            raise ValueError("paired batches need both real and fake clips")
        self.fake_weights, self.real_weights = weights[self.fakes], weights[self.reals]
        self.partners = pair_partners(clips, source_of)
        self.pairs_per_batch, self.batches = batch_size // 2, batches
        self.generator = generator

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        draw = self.generator
        for _ in range(self.batches):
            fakes = self.fakes[torch.multinomial(self.fake_weights, self.pairs_per_batch, True, generator=draw)]
            positions = torch.rand(self.pairs_per_batch, generator=draw, dtype=torch.double).tolist()
            batch = []
            for fake, position in zip(fakes.tolist(), positions):
                partners = self.partners[fake]
                if partners:
                    real = partners[int(torch.randint(len(partners), (1,), generator=draw))]
                else:
                    real = int(self.reals[torch.multinomial(self.real_weights, 1, generator=draw)])
                batch += [(fake, position), (real, position)]
            yield batch


def _pad_collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack clips, padding shorter ones by repeating their last frame (the padding is masked out of the loss)."""
    length = max(item["maps"].shape[0] for item in batch)
    maps, labels, valid = [], [], []
    for item in batch:
        count = item["maps"].shape[0]
        pad = length - count
        maps.append(torch.cat([item["maps"], item["maps"][-1:].expand(pad, -1, -1, -1)]) if pad else item["maps"])
        labels.append(torch.cat([item["labels"], item["labels"][-1:].expand(pad)]) if pad else item["labels"])
        mask = torch.zeros(length, dtype=torch.bool)
        mask[:count] = True
        valid.append(mask)
    return {"maps": torch.stack(maps), "labels": torch.stack(labels), "valid": torch.stack(valid)}


class CachedHeadModule(L.LightningModule):
    """Trains convs, pooling, RNN and head of ``model`` on cached backbone maps with per-frame cross-entropy."""

    def __init__(self, model: TemporalDeepfakeModel, lr: float = 1e-3, weight_decay: float = 0.0,
                 total_steps: int = 1000, warmup_steps: int = 50, feature_noise: float = 0.0,
                 cache_stage: str | None = None, tail_lr_scale: float = 0.1, label_smoothing: float = 0.0,
                 mix_statistics: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.model.backbone.requires_grad_(False)
        # Maps cached before the backbone's last stage: the stages in between run here and are fine-tuned, at a
        # smaller learning rate than the newly initialised layers after them.
        self.tail = backbone_tail(model, cache_stage)
        self.tail.requires_grad_(tail_lr_scale > 0)  # 0: the stages run but stay frozen (a control)
        self.tail_lr_scale = tail_lr_scale
        self.lr, self.weight_decay = lr, weight_decay
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.feature_noise = feature_noise
        self.mix_statistics = mix_statistics  # the share of batches whose channel statistics are mixed
        self.loss = nn.CrossEntropyLoss(reduction="none", label_smoothing=label_smoothing)

    def _clip_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        maps = batch["maps"]
        if self.mix_statistics and random.random() < self.mix_statistics:
            maps = mix_channel_statistics(maps)
        if self.feature_noise:
            maps = jitter_channel_gains(maps, self.feature_noise)
        batch_size, steps = maps.shape[:2]
        features = self.model.forward_neck(self.tail(maps.flatten(0, 1))).view(batch_size, steps, -1)
        logits = self.model.forward_temporal(features)
        losses = self.loss(logits.flatten(0, 1).float(), batch["labels"].flatten())
        valid = batch["valid"].flatten().float()
        return (losses * valid).sum() / valid.sum().clamp(min=1)

    def training_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        parts = {name: self._clip_loss(part) for name, part in batch.items() if part is not None}
        loss = sum(parts.values()) / len(parts)
        for name, value in parts.items():
            self.log(f"train/loss_{name}", value, prog_bar=True)
        return loss

    def configure_optimizers(self):
        tuned = {id(p) for p in self.tail.parameters() if p.requires_grad}
        groups = [{"params": [p for p in self.model.parameters() if p.requires_grad and id(p) not in tuned]}]
        if tuned:
            groups.append({"params": [p for p in self.tail.parameters() if p.requires_grad],
                           "lr": self.lr * self.tail_lr_scale})
        optimizer = torch.optim.Adam(groups, lr=self.lr, weight_decay=self.weight_decay)

        def schedule(step: int) -> float:  # linear warm-up, then cosine to zero
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def train(self, mode: bool = True):
        super().train(mode)
        # Frozen stages are not even run; the tuned ones keep their BatchNorm statistics too (batches of a few
        # dozen mixed stills and frames would give noisy ones): only their weights move.
        self.model.backbone.eval()
        return self


def backbone_tail(model: TemporalDeepfakeModel, cache_stage: str | None) -> nn.Sequential:
    """The backbone stages that maps cached after ``cache_stage`` still have to pass (none when the cache holds
    the backbone's output)."""
    if cache_stage is None or cache_stage == model.config.backbone_stage:
        return nn.Sequential()
    return model.backbone.stages_after(cache_stage)


def train_cached_head(
    model: TemporalDeepfakeModel,
    clips: Sequence[SourcedClip],
    steps: int,
    still_batch: int = 32,
    video_batch: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    sbi_share_of_fakes: float = 0.5,
    feature_noise: float = 0.0,
    mix_statistics: float = 0.0,
    seed: int = 0,
    precision: str = "bf16-mixed",
    out_dir: Path | None = None,
    progress: bool = True,
    num_workers: int = 1,
    single_frame: bool = False,
    cache_stage: str | None = None,
    tail_lr_scale: float = 0.1,
    label_smoothing: float = 0.0,
    ema_decay: float | None = None,
    ema_start: int = 0,
    paired_batches: bool = False,
    source_of: Mapping[str, str] | None = None,
) -> TemporalDeepfakeModel:
    """Train ``model``'s trainable part for ``steps`` steps on ``clips``; returns the model (in eval mode).

    ``single_frame`` trains on one random frame of each clip: the RNN then sees one step at a time, as it does when
    scoring with a window of 1 frame. ``cache_stage``: the backbone stage the maps were cached after, when earlier
    than the model's last one; the stages after it are fine-tuned at ``tail_lr_scale`` times ``lr``.
    ``feature_noise``: the strength of ``jitter_channel_gains`` at every step; ``mix_statistics``: the share of
    batches passed through ``mix_channel_statistics`` (both on training batches only, never when scoring).
    ``ema_decay``: the returned weights are an exponential moving average of the weights after each step from
    ``ema_start`` on (Lightning's ``EMAWeightAveraging``); the last step's own weights are then kept in the model's
    ``last_step_state`` attribute (a state dict), for comparison. ``paired_batches``: each batch is made of
    real/fake pairs of one clip (``PairedBatchSampler``; ``source_of`` maps manipulated videos to their originals)
    instead of independent draws."""
    L.seed_everything(seed, workers=True)
    random.seed(seed)
    groups = {"stills": [c for c in clips if c.clip.kind in STILL_KINDS],
              "videos": [c for c in clips if c.clip.kind not in STILL_KINDS]}
    loaders = {}
    generator = torch.Generator().manual_seed(seed)
    for name, chosen in groups.items():
        if not chosen:
            continue
        batch_size = still_batch if name == "stills" else video_batch
        if paired_batches:
            batching = {"batch_sampler": PairedBatchSampler(chosen, batch_size, steps + 1, sbi_share_of_fakes,
                                                            source_of, generator)}
        else:
            sampler = WeightedRandomSampler(balanced_weights(chosen, sbi_share_of_fakes),
                                            num_samples=(steps + 1) * batch_size, replacement=True,
                                            generator=generator)
            batching = {"batch_size": batch_size, "sampler": sampler}
        loaders[name] = DataLoader(CachedClips(chosen, single_frame), **batching, collate_fn=_pad_collate,
                                   num_workers=num_workers, persistent_workers=num_workers > 0,
                                   prefetch_factor=4 if num_workers else None)
    if not loaders:
        raise ValueError("no cached clips to train on")
    module = CachedHeadModule(model, lr=lr, weight_decay=weight_decay, total_steps=steps,
                              warmup_steps=min(50, steps // 10), feature_noise=feature_noise,
                              mix_statistics=mix_statistics,
                              cache_stage=cache_stage, tail_lr_scale=tail_lr_scale, label_smoothing=label_smoothing)
    averaging = _EMAKeepingLastStep(decay=ema_decay, update_starting_at_step=ema_start) if ema_decay else None
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                        default_root_dir=str(out_dir) if out_dir else None, limit_val_batches=0,
                        callbacks=[averaging] if averaging else None)
    trainer.fit(module, train_dataloaders=CombinedLoader(loaders, mode="max_size_cycle"))
    if averaging:
        module.model.last_step_state = averaging.last_step_state
    return module.model.eval()


class _EMAKeepingLastStep(EMAWeightAveraging):
    """EMA weights at the end of training, with a copy of the last step's own weights kept beside them."""

    last_step_state: dict[str, torch.Tensor] | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: CachedHeadModule) -> None:
        self.last_step_state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        super().on_train_end(trainer, pl_module)


@torch.no_grad()
def score_cached_videos(model: TemporalDeepfakeModel, clips: Sequence[SourcedClip],
                        window: int | None = None, cache_stage: str | None = None) -> dict[str, dict[str, Any]]:
    """Per video (its key; ``key/variant`` for other stored variants than the first plain one): label, dataset, method, group, frame p_fake in frame order (the RNN run over windows of the
    model's window, as a scan does) and the video's p_fake (the mean over its frames)."""
    by_video: dict[tuple[Path, str, str], list[SourcedClip]] = defaultdict(list)
    for item in clips:
        by_video[(item.cache, item.clip.key, item.clip.variant)].append(item)
    maps: dict[Path, CacheMaps] = {}
    model.eval()
    tail = backbone_tail(model, cache_stage)
    results = {}
    for (cache, key, variant), items in sorted(by_video.items()):
        items = sorted(items, key=lambda c: window_start(c.clip))
        reader = maps.setdefault(cache, CacheMaps(cache))
        frames = torch.cat([reader(item.clip) for item in items])
        features = torch.cat([model.forward_neck(tail(frames[i : i + 64])) for i in range(0, len(frames), 64)])
        first = items[0].clip
        if first.kind in STILL_KINDS:
            p_fake = model.predict_track(features, window=1)
        else:
            p_fake = model.predict_track(features, window=window)
        results[key if variant == "plain0" else f"{key}/{variant}"] = {"label": first.label, "dataset": first.dataset, "method": first.method,
                        "group": first.group, "frames": p_fake.tolist(), "p_fake": float(p_fake.mean())}
    return results


def video_metrics(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Video- and frame-level ROC-AUC of scored videos (None where one class is missing)."""
    from sklearn.metrics import roc_auc_score

    labels = np.array([r["label"] for r in results.values()])
    scores = np.array([r["p_fake"] for r in results.values()])
    frame_labels = np.concatenate([[r["label"]] * len(r["frames"]) for r in results.values()])
    frame_scores = np.concatenate([r["frames"] for r in results.values()])
    both = len(set(labels.tolist())) == 2
    return {"videos": len(labels), "real": int((labels == 0).sum()), "fake": int((labels == 1).sum()),
            "video_auc": float(roc_auc_score(labels, scores)) if both else None,
            "frame_auc": float(roc_auc_score(frame_labels, frame_scores)) if both else None}
