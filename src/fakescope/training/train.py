"""``train``: fit the detector with Lightning, keep the best (by validation AUC) and last checkpoints, export one."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..evaluation.metrics import choose_threshold as choose_threshold_by_rule
from ..models import CheckpointMeta, save_checkpoint
from .config import TrainConfig
from .module import CropClipDataModule, DetectorModule

log = logging.getLogger(__name__)
EXPORT_NAME = "model.safetensors"


@dataclass
class TrainResult:
    out_dir: Path
    exported: Path | None
    best_checkpoint: str | None
    best_val_auc: float | None
    threshold: float | None
    epochs: int


def lightning_precision(precision: str, accelerator: str) -> str:
    """Lightning's precision string for the config's ``precision`` ("auto": 16-mixed on a GPU, else 32-true)."""
    if precision != "auto":
        return precision
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if gpu else "32-true"


def choose_threshold(labels, scores, rule: str) -> float:
    """The verdict threshold ``rule`` picks on validation ``labels`` and ``scores``."""
    return float(choose_threshold_by_rule(labels, scores, rule=rule))


def train(config: TrainConfig, resume: str | None = None, progress: bool = True) -> TrainResult:
    """Train as ``config`` says; ``resume`` is a Lightning checkpoint path or "last" (the run's last checkpoint)."""
    L.seed_everything(config.seed, workers=True)
    out_dir = Path(config.trainer.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = out_dir / "checkpoints"
    resume = _resume_path(resume, checkpoints)
    _check(config)
    module = DetectorModule(config.to_dict())
    datamodule = CropClipDataModule(config)
    saves = _CheckpointSaves(config, checkpoints)
    trainer = _trainer(config, out_dir, saves.callbacks, progress)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    return _export(config, trainer, module, datamodule, saves, out_dir)


def _resume_path(resume: str | None, checkpoints: Path) -> str | None:
    """``resume`` as a checkpoint path ("last": the run's last.ckpt, which must exist)."""
    if resume != "last":
        return resume
    path = checkpoints / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    return str(path)


def _check(config: TrainConfig) -> None:
    if config.trainer.export not in ("best", "last"):
        raise ValueError(f"trainer.export must be best or last, got {config.trainer.export!r}")
    if not config.data.validation and config.threshold is None:
        raise ValueError("data.validation=false needs a fixed threshold (threshold=0.5, or one chosen by "
                         "cross-validation): there are no validation videos to choose it on")


class _CheckpointSaves:
    """The checkpoint callbacks: ``last`` (kept current every epoch) and, with validation, ``best`` by val AUC."""

    def __init__(self, config: TrainConfig, checkpoints: Path) -> None:
        # A separate callback keeps last.ckpt current every epoch (save_last only follows saves of the best).
        self.last = ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, monitor=None,
                                    enable_version_counter=False)
        self.callbacks: list[Any] = [self.last, LearningRateMonitor(logging_interval="epoch")]
        self.best: ModelCheckpoint | None = None
        if config.data.validation:
            self.best = ModelCheckpoint(dirpath=checkpoints, monitor="val_auc", mode="max", save_top_k=1,
                                        filename="best-epoch{epoch:02d}-auc{val_auc:.4f}", auto_insert_metric_name=False)
            self.callbacks.insert(0, self.best)
            if config.trainer.early_stopping_patience > 0:
                self.callbacks.append(EarlyStopping(monitor="val_auc", mode="max",
                                                    patience=config.trainer.early_stopping_patience))

    @property
    def best_path(self) -> str | None:
        return (self.best.best_model_path or None) if self.best is not None else None

    @property
    def best_auc(self) -> float | None:
        if self.best is None or self.best.best_model_score is None:
            return None
        return float(self.best.best_model_score)

    def export_from(self, export: str) -> str | None:
        """The checkpoint to export: the best, or the last (with monitor=None a ModelCheckpoint's "best" is simply
        its latest save)."""
        return self.best_path if export == "best" else (self.last.best_model_path or None)


def _trainer(config: TrainConfig, out_dir: Path, callbacks: list[Any], progress: bool) -> L.Trainer:
    return L.Trainer(
        default_root_dir=out_dir,
        max_epochs=config.trainer.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=lightning_precision(config.trainer.precision, config.trainer.accelerator),
        callbacks=callbacks,
        logger=[TensorBoardLogger(out_dir, name="tensorboard"), CSVLogger(out_dir, name="csv")],
        log_every_n_steps=config.trainer.log_every_n_steps,
        max_time={"minutes": config.trainer.max_time_minutes} if config.trainer.max_time_minutes else None,
        enable_progress_bar=progress,
        deterministic=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if config.data.validation else 0,
    )


def _export(config: TrainConfig, trainer: L.Trainer, module: DetectorModule, datamodule: CropClipDataModule,
            saves: _CheckpointSaves, out_dir: Path) -> TrainResult:
    """Export the chosen checkpoint's model with its threshold and validation figures (on the main process)."""
    validate = config.data.validation
    export_from = saves.export_from(config.trainer.export)
    exported = None
    threshold = None
    if export_from and validate:
        # Re-validate the exported weights: their metrics, and the verdict threshold unless a fixed one is given.
        trainer.validate(module, datamodule=datamodule, ckpt_path=export_from, verbose=False)
    elif export_from:
        module = DetectorModule.load_from_checkpoint(export_from, map_location="cpu")
    if trainer.is_global_zero and export_from:
        val = module.last_val if validate else {}
        threshold = _export_threshold(config, val)
        info = {
            "train_config": config.to_dict(),
            "exported_checkpoint": export_from,
            "best_checkpoint": saves.best_path,
            "epochs_trained": trainer.current_epoch,
            "world_size": trainer.world_size,
            "validation": {
                "video_auc": val.get("video_auc"),
                "frame_auc": val.get("frame_auc"),
                "videos": len(val.get("labels", [])),
                "threshold_rule": "fixed" if config.threshold is not None else config.threshold_rule,
            },
        }
        exported = save_checkpoint(out_dir / EXPORT_NAME, module.model,
                                   CheckpointMeta(trained=True, threshold=threshold, info=info))
        _write_summary(out_dir, exported, export_from, saves, threshold, info, val, datamodule)
    return TrainResult(out_dir, exported, saves.best_path, saves.best_auc, threshold, trainer.current_epoch)


def _export_threshold(config: TrainConfig, val: dict[str, Any]) -> float:
    """The fixed threshold of the config, else the one its rule picks on validation, else 0.5."""
    if config.threshold is not None:
        return float(config.threshold)
    if len(val.get("labels", [])):
        return choose_threshold(val["labels"], val["scores"], config.threshold_rule)
    return 0.5


def _write_summary(out_dir: Path, exported: Path, export_from: str, saves: _CheckpointSaves, threshold: float,
                   info: dict[str, Any], val: dict[str, Any], datamodule: CropClipDataModule) -> None:
    """train_summary.json: what was exported, its validation figures and each validation video's score."""
    (out_dir / "train_summary.json").write_text(json.dumps({
        "exported": str(exported), "exported_checkpoint": export_from, "best_checkpoint": saves.best_path,
        "best_val_auc": saves.best_auc, "threshold": threshold, **info["validation"],
        "val_videos": [
            {"key": datamodule.val_tracks[track].key, "label": int(label), "p_fake": float(score)}
            for track, label, score in zip(val.get("tracks", []), val.get("labels", []), val.get("scores", []))
        ],
    }, indent=2) + "\n")
