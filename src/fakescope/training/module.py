"""Lightning wiring: the model's training/validation steps, optimiser, and the crop-clip data module."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from ..models import create_model
from .augment import build_clip_augmentation
from .clips import EvalClips, TrackCrops, TrainClips, tracks_from_index
from .config import TrainConfig

log = logging.getLogger(__name__)


def video_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(labels.tolist())) < 2:
        return None
    return float(roc_auc_score(labels, scores))


class DetectorModule(L.LightningModule):
    """Trains a ``TemporalDeepfakeModel`` with per-frame cross-entropy on clips."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = TrainConfig.from_dict(config)
        model_cfg = self.config.model
        self.model = create_model(
            model_cfg.name,
            pretrained=model_cfg.pretrained and model_cfg.backbone_weights is None,
            backbone_weights=model_cfg.backbone_weights,
            **model_cfg.overrides,
        )
        weights = self.config.optim.class_weights
        self.loss = nn.CrossEntropyLoss(
            weight=torch.tensor(weights, dtype=torch.float32) if weights else None,
            label_smoothing=self.config.optim.label_smoothing,
        )
        self._trainable_backbone = self._select_trainable_backbone(self.config.optim.backbone_trainable_blocks)
        self._val_outputs: list[tuple[int, list[float], int]] = []
        self.last_val: dict[str, Any] = {}

    # --- backbone freezing -------------------------------------------------------------------------------------
    def _select_trainable_backbone(self, blocks: int | None) -> list[nn.Module]:
        stages = [m for _, m in self.model.backbone.named_children() if any(True for _ in m.parameters())]
        return stages if blocks is None else stages[len(stages) - blocks :] if blocks > 0 else []

    def _backbone_frozen(self) -> bool:
        return self.current_epoch < self.config.optim.freeze_backbone_epochs

    def _apply_freezing(self) -> None:
        self.model.backbone.requires_grad_(False)
        if not self._backbone_frozen():
            for stage in self._trainable_backbone:
                stage.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        # Batches are a few clips of one person each: BatchNorm statistics from them would wreck the pretrained
        # ones, so the backbone's BatchNorm layers always use their running statistics.
        for module in self.model.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        self._apply_freezing()

    # --- steps -------------------------------------------------------------------------------------------------
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(clips.contiguous())

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["clip"])
        loss = self.loss(logits.flatten(0, 1).float(), batch["labels"].flatten())
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log_dict({"train_loss": loss, "train_acc": accuracy}, prog_bar=True, batch_size=len(batch["clip"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["clip"]).float()
        valid = batch["valid"]
        loss = self.loss(logits[valid], batch["labels"][valid])
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=int(valid.sum()))
        probs = logits.softmax(-1)[..., 1]
        for track, p, mask, labels in zip(batch["track"], probs, valid, batch["labels"]):
            self._val_outputs.append((int(track), p[mask].tolist(), int(labels[0])))

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []

    def on_validation_epoch_end(self) -> None:
        outputs = self._val_outputs
        if dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, outputs)
            outputs = [item for part in gathered for item in part]
        per_track: dict[int, list[float]] = {}
        labels: dict[int, int] = {}
        for track, probs, label in outputs:
            per_track.setdefault(track, []).extend(probs)
            labels[track] = label
        tracks = sorted(per_track)
        video_labels = np.array([labels[t] for t in tracks])
        video_scores = np.array([float(np.mean(per_track[t])) for t in tracks])
        frame_labels = np.concatenate([[labels[t]] * len(per_track[t]) for t in tracks]) if tracks else np.array([])
        frame_scores = np.concatenate([per_track[t] for t in tracks]) if tracks else np.array([])
        auc = video_auc(video_labels, video_scores)
        frame_auc = video_auc(frame_labels, frame_scores)
        self.last_val = {"tracks": tracks, "labels": video_labels, "scores": video_scores,
                         "frame_labels": frame_labels, "frame_scores": frame_scores,
                         "video_auc": auc, "frame_auc": frame_auc}
        if auc is None and tracks:
            log.warning("validation has a single class: video AUC undefined, logged as 0.5")
        accuracy = float(((video_scores >= 0.5) == video_labels).mean()) if tracks else 0.0
        self.log_dict({
            "val_auc": 0.5 if auc is None else auc,
            "val_frame_auc": 0.5 if frame_auc is None else frame_auc,
            "val_video_acc": accuracy,
        }, prog_bar=True)

    # --- optimisation ------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        optim = self.config.optim
        backbone = list(self.model.backbone.parameters())
        backbone_ids = {id(p) for p in backbone}
        rest = [p for p in self.model.parameters() if id(p) not in backbone_ids]
        optimizer = torch.optim.Adam(
            [{"params": rest, "lr": optim.lr}, {"params": backbone, "lr": optim.lr * optim.backbone_lr_factor}],
            lr=optim.lr,
            weight_decay=optim.weight_decay,
        )
        if optim.scheduler == "none":
            return optimizer
        if optim.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.config.trainer.max_epochs))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        if optim.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": "val_auc", "interval": "epoch"}}
        raise ValueError(f"unknown scheduler {optim.scheduler!r}: use cosine, plateau or none")


def _canonical(path) -> str:
    return str(Path(path).resolve())


class CropClipDataModule(L.LightningDataModule):
    """Preprocesses the configured datasets once (rank 0), then serves clips of cached face crops."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.train_tracks: list[TrackCrops] = []
        self.val_tracks: list[TrackCrops] = []

    @property
    def cache_dir(self) -> Path:
        return Path(self.config.data.cache)

    def _items(self):
        from ..data import load_dataset

        data = self.config.data
        train = [item for spec in data.train for item in load_dataset(spec)
                 if data.train_split is None or item.split == data.train_split]
        if not data.validation:
            return train, []
        val_specs = data.val or data.train
        val = [item for spec in val_specs for item in load_dataset(spec)
               if data.val_split is None or item.split == data.val_split]
        return train, val

    def prepare_data(self) -> None:
        from ..data.preprocess import preprocess
        from ..video import FrameSelection

        data = self.config.data
        train, val = self._items()
        if not train:
            raise ValueError("no training videos: check data.train and data.train_split")
        selection = FrameSelection.from_options(every=data.frame_stride) if data.frame_stride else \
            FrameSelection.from_options(frames=data.frames_per_video)
        unique = {item.key + "|" + str(item.path): item for item in train + val}
        preprocess(list(unique.values()), self.cache_dir, selection, workers=data.preprocess_workers)

    def setup(self, stage: str | None = None) -> None:
        from ..data.preprocess import load_index

        train, val = self._items()
        records = load_index(self.cache_dir)
        train_paths = {_canonical(item.path) for item in train}
        val_paths = {_canonical(item.path) for item in val}
        self.train_tracks = tracks_from_index(r for r in records if _canonical(r.path) in train_paths)
        self.val_tracks = tracks_from_index(r for r in records if _canonical(r.path) in val_paths)
        if not self.train_tracks:
            raise ValueError("no face crops for the training videos (see the preprocess report)")
        overlap = train_paths & val_paths
        if overlap:
            raise ValueError(f"{len(overlap)} videos are in both training and validation, e.g. {sorted(overlap)[0]}")

    def _model_config(self):
        from ..models import model_config

        return model_config(self.config.model.name, **self.config.model.overrides)

    def train_dataloader(self) -> DataLoader:
        data = self.config.data
        model = self._model_config()
        dataset = TrainClips(self.train_tracks, data.clip_length, model.input_size, model.mean, model.std,
                             transform=build_clip_augmentation(data.augment, model.input_size),
                             sbi=data.sbi.enabled, seed=self.config.seed)
        sampler = WeightedRandomSampler(dataset.sample_weights(data.sbi.fraction), num_samples=data.clips_per_epoch,
                                        replacement=True)
        return DataLoader(dataset, batch_size=data.batch_size, sampler=sampler, num_workers=data.num_workers,
                          persistent_workers=data.num_workers > 0, drop_last=False)

    def val_dataloader(self) -> DataLoader:
        data = self.config.data
        model = self._model_config()
        dataset = EvalClips(self.val_tracks, data.clip_length, model.input_size, model.mean, model.std)
        return DataLoader(dataset, batch_size=data.batch_size, shuffle=False, num_workers=data.num_workers,
                          persistent_workers=data.num_workers > 0)
