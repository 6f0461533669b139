"""``train``: fit the detector with Lightning, keep the best checkpoint by validation AUC, export it for scanning."""
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


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if gpu else "32-true"


def choose_threshold(labels, scores, rule: str) -> float:
    try:
        from ..evaluation.metrics import choose_threshold as choose
    except ImportError:  # pragma: no cover - evaluation is part of the package
        return 0.5
    return float(choose(labels, scores, rule=rule))


def train(config: TrainConfig, resume: str | None = None, progress: bool = True) -> TrainResult:
    """Train as ``config`` says; ``resume`` is a Lightning checkpoint path or "last" (the run's last checkpoint)."""
    L.seed_everything(config.seed, workers=True)
    out_dir = Path(config.trainer.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = out_dir / "checkpoints"
    if resume == "last":
        resume = str(checkpoints / "last.ckpt")
        if not Path(resume).is_file():
            raise FileNotFoundError(f"nothing to resume: {resume} does not exist")

    module = DetectorModule(config.to_dict())
    datamodule = CropClipDataModule(config)
    best = ModelCheckpoint(dirpath=checkpoints, monitor="val_auc", mode="max", save_top_k=1,
                           filename="best-epoch{epoch:02d}-auc{val_auc:.4f}", auto_insert_metric_name=False)
    # A separate callback keeps last.ckpt current every epoch (save_last only follows saves of the best).
    last = ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, monitor=None, enable_version_counter=False)
    callbacks: list[Any] = [best, last, LearningRateMonitor(logging_interval="epoch")]
    if config.trainer.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor="val_auc", mode="max", patience=config.trainer.early_stopping_patience))
    trainer = L.Trainer(
        default_root_dir=out_dir,
        max_epochs=config.trainer.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=resolve_precision(config.trainer.precision, config.trainer.accelerator),
        callbacks=callbacks,
        logger=[TensorBoardLogger(out_dir, name="tensorboard"), CSVLogger(out_dir, name="csv")],
        log_every_n_steps=config.trainer.log_every_n_steps,
        max_time={"minutes": config.trainer.max_time_minutes} if config.trainer.max_time_minutes else None,
        enable_progress_bar=progress,
        deterministic=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)

    best_path = best.best_model_path or None
    best_auc = float(best.best_model_score) if best.best_model_score is not None else None
    exported = None
    threshold = None
    if best_path:
        # Re-validate the best weights to pick the verdict threshold on the validation videos.
        trainer.validate(module, datamodule=datamodule, ckpt_path=best_path, verbose=False)
    if trainer.is_global_zero and best_path:
        val = module.last_val
        threshold = choose_threshold(val["labels"], val["scores"], config.threshold_rule) if len(val.get("labels", [])) \
            else 0.5
        info = {
            "train_config": config.to_dict(),
            "best_checkpoint": best_path,
            "epochs_trained": trainer.current_epoch,
            "world_size": trainer.world_size,
            "validation": {
                "video_auc": val.get("video_auc"),
                "frame_auc": val.get("frame_auc"),
                "videos": len(val.get("labels", [])),
                "threshold_rule": config.threshold_rule,
            },
        }
        exported = save_checkpoint(out_dir / EXPORT_NAME, module.model,
                                   CheckpointMeta(trained=True, threshold=threshold, info=info))
        (out_dir / "train_summary.json").write_text(json.dumps({
            "exported": str(exported), "best_checkpoint": best_path, "best_val_auc": best_auc,
            "threshold": threshold, **info["validation"],
        }, indent=2) + "\n")
    return TrainResult(out_dir, exported, best_path, best_auc, threshold, trainer.current_epoch)
