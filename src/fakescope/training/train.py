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

    validate = config.data.validation
    if config.trainer.export not in ("best", "last"):
        raise ValueError(f"trainer.export must be best or last, got {config.trainer.export!r}")
    if not validate and config.threshold is None:
        raise ValueError("data.validation=false needs a fixed threshold (threshold=0.5, or one chosen by "
                         "cross-validation): there are no validation videos to choose it on")
    module = DetectorModule(config.to_dict())
    datamodule = CropClipDataModule(config)
    # A separate callback keeps last.ckpt current every epoch (save_last only follows saves of the best).
    last = ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, monitor=None, enable_version_counter=False)
    callbacks: list[Any] = [last, LearningRateMonitor(logging_interval="epoch")]
    best = None
    if validate:
        best = ModelCheckpoint(dirpath=checkpoints, monitor="val_auc", mode="max", save_top_k=1,
                               filename="best-epoch{epoch:02d}-auc{val_auc:.4f}", auto_insert_metric_name=False)
        callbacks.insert(0, best)
        if config.trainer.early_stopping_patience > 0:
            callbacks.append(EarlyStopping(monitor="val_auc", mode="max",
                                           patience=config.trainer.early_stopping_patience))
    trainer = L.Trainer(
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
        limit_val_batches=None if validate else 0,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)

    best_path = (best.best_model_path or None) if best is not None else None
    best_auc = float(best.best_model_score) if best is not None and best.best_model_score is not None else None
    # With monitor=None a ModelCheckpoint's "best" is simply its latest save.
    export_from = best_path if config.trainer.export == "best" else (last.best_model_path or None)
    exported = None
    threshold = None
    if export_from and validate:
        # Re-validate the exported weights: their metrics, and the verdict threshold unless a fixed one is given.
        trainer.validate(module, datamodule=datamodule, ckpt_path=export_from, verbose=False)
    elif export_from:
        module = DetectorModule.load_from_checkpoint(export_from, map_location="cpu")
    if trainer.is_global_zero and export_from:
        val = module.last_val if validate else {}
        if config.threshold is not None:
            threshold = float(config.threshold)
        elif len(val.get("labels", [])):
            threshold = choose_threshold(val["labels"], val["scores"], config.threshold_rule)
        else:
            threshold = 0.5
        info = {
            "train_config": config.to_dict(),
            "exported_checkpoint": export_from,
            "best_checkpoint": best_path,
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
        (out_dir / "train_summary.json").write_text(json.dumps({
            "exported": str(exported), "exported_checkpoint": export_from, "best_checkpoint": best_path,
            "best_val_auc": best_auc, "threshold": threshold, **info["validation"],
            "val_videos": [
                {"key": datamodule.val_tracks[track].key, "label": int(label), "p_fake": float(score)}
                for track, label, score in zip(val.get("tracks", []), val.get("labels", []), val.get("scores", []))
            ],
        }, indent=2) + "\n")
    return TrainResult(out_dir, exported, best_path, best_auc, threshold, trainer.current_epoch)
