"""Training end to end with the tiny model on generated real and manipulated clips: the loss falls, the exported
checkpoint scans, training resumes, and two processes train together (DDP on the CPU)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from clips import render_frame
from fakescope.analysis import Scanner
from fakescope.training import TrainConfig, train

pytestmark = pytest.mark.slow  # Lightning fits (one with two DDP processes): tens of seconds each


def _write_clip(path: Path, seed: int, manipulated: bool, n_frames: int = 10, size=(320, 240)) -> Path:
    """A face clip; a manipulated one has its inner face replaced by a blurred, colour-shifted copy (a crude swap)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size)
    for index in range(n_frames):
        frame = render_frame(index, n_frames, size, face=True, seed=seed)
        if manipulated:
            h, w = frame.shape[:2]
            mask = np.zeros((h, w), np.float32)
            cv2.ellipse(mask, (w // 2, h // 2), (w // 8, h // 5), 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (15, 15), 0)[..., None]
            altered = cv2.GaussianBlur(frame, (9, 9), 0).astype(np.float32)
            altered[..., 2] = np.clip(altered[..., 2] * 1.3 + 20, 0, 255)
            frame = (altered * mask + frame * (1 - mask)).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    rows = []
    for i in range(6):
        split = "val" if i >= 4 else "train"
        for label, manipulated in (("real", False), ("fake", True)):
            path = _write_clip(root / f"{label}_{i}.mp4", seed=i, manipulated=manipulated)
            rows.append([path.name, label, split, f"person{i}"])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split", "group"])
        writer.writerows(rows)
    return manifest


def _config(manifest: Path, out: Path, **trainer) -> TrainConfig:
    data = {
        "seed": 1,
        "model": {"name": "tiny_lstm", "pretrained": False},
        "data": {"train": [f"manifest:{manifest}"], "cache": str(out.parent / "cache"), "frames_per_video": 6,
                 "clip_length": 4, "clips_per_epoch": 48, "batch_size": 4, "num_workers": 0,
                 "preprocess_workers": 1, "sbi": {"enabled": True, "fraction": 0.3},
                 # Geometric augmentation only: a few dozen steps must be enough for the tiny model to learn.
                 "augment": {"color_jitter": 0, "blur": 0, "jpeg": None}},
        "optim": {"lr": 3e-3, "freeze_backbone_epochs": 0, "scheduler": "none"},
        "trainer": {"max_epochs": 5, "accelerator": "cpu", "precision": "32-true", "early_stopping_patience": 0,
                    "out_dir": str(out), "log_every_n_steps": 1, **trainer},
    }
    return TrainConfig.from_dict(data)


def _epoch_losses(out: Path) -> list[float]:
    per_epoch: dict[int, list[float]] = {}
    for metrics in sorted(out.glob("csv/version_*/metrics.csv")):
        with open(metrics, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("train_loss"):
                    per_epoch.setdefault(int(row["epoch"]), []).append(float(row["train_loss"]))
    return [float(np.mean(per_epoch[e])) for e in sorted(per_epoch)]


def test_tiny_training_loss_falls_and_the_export_scans(manifest, tmp_path):
    out = tmp_path / "run"
    result = train(_config(manifest, out), progress=False)
    losses = _epoch_losses(out)
    assert len(losses) == 5
    assert min(losses[-2:]) < losses[0] * 0.85, losses
    assert result.exported is not None and result.exported.is_file()
    assert result.best_val_auc is not None and 0.0 <= result.threshold <= 1.0
    assert list((out / "tensorboard").rglob("events.out.tfevents.*")), "TensorBoard logs"
    detector = Scanner.load(result.exported, device="cpu")  # trained: no --allow-untrained needed
    assert detector.meta.trained and detector.threshold == pytest.approx(result.threshold)
    assert detector.meta.info["train_config"]["model"]["name"] == "tiny_lstm"
    scan = detector.scan(manifest.parent / "fake_5.mp4")
    assert scan.verdict in ("real", "fake") and scan.frames_with_faces == 10


def test_training_resumes_from_its_last_checkpoint(manifest, tmp_path):
    out = tmp_path / "run"
    first = train(_config(manifest, out, max_epochs=2), progress=False)
    assert (out / "checkpoints" / "last.ckpt").is_file() and first.epochs == 2
    resumed = train(_config(manifest, out, max_epochs=3), resume="last", progress=False)
    assert resumed.epochs == 3
    epochs_logged = []
    for metrics in sorted(out.glob("csv/version_*/metrics.csv")):
        with open(metrics, newline="") as handle:
            epochs_logged.append(sorted({int(r["epoch"]) for r in csv.DictReader(handle) if r.get("train_loss")}))
    assert epochs_logged == [[0, 1], [2]]  # the resumed run trained only the missing epoch


def test_two_processes_train_together_with_ddp(manifest, tmp_path):
    out = tmp_path / "ddp"
    config = _config(manifest, out, max_epochs=1, devices=2, strategy="ddp")
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    script = Path(sys.executable).with_name("fakescope")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run([str(script), "train", "--config", str(path), "--quiet"], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    detector = Scanner.load(out / "model.safetensors", device="cpu")
    assert detector.meta.info["world_size"] == 2


def test_export_last_weights_and_their_per_video_validation_scores(manifest, tmp_path):
    import json

    import torch
    from safetensors import safe_open

    out = tmp_path / "last"
    result = train(_config(manifest, out, max_epochs=2, export="last"), progress=False)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["exported_checkpoint"].endswith("last.ckpt")
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    with safe_open(str(result.exported), framework="pt") as handle:
        key = "model.head.0.weight"
        assert torch.equal(handle.get_tensor(key[len("model."):]), last[key])
    videos = summary["val_videos"]
    assert len(videos) == 4 and {v["label"] for v in videos} == {0, 1}
    assert all(0.0 <= v["p_fake"] <= 1.0 and v["key"] for v in videos)


def test_training_without_validation_needs_and_stores_a_fixed_threshold(manifest, tmp_path):
    from fakescope.training import TrainConfig

    def config(**top):
        base = _config(manifest, tmp_path / "all", max_epochs=1, export="last").to_dict()
        base["data"].update(train_split=None, validation=False)
        base.update(top)
        return TrainConfig.from_dict(base)

    with pytest.raises(ValueError, match="fixed threshold"):
        train(config(), progress=False)
    result = train(config(threshold=0.42), progress=False)
    detector = Scanner.load(result.exported, device="cpu")
    assert detector.threshold == pytest.approx(0.42)
    assert detector.meta.info["validation"]["videos"] == 0
    assert not list((tmp_path / "all").glob("checkpoints/best-*"))
