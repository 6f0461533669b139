"""The face encoder: face crops -> per-frame features, the one place where faces are cropped, normalised and run
through the model's CNN, and where the temporal head turns a track's features into p_fake. Scan, live and the
heatmaps all use it, so the heatmaps explain the very features the scores came from.

``FaceEncoder`` runs the PyTorch model (under autocast for bf16/fp16); ``OnnxFaceEncoder`` runs an exported ONNX
model with ONNX Runtime, and builds the PyTorch model of the same weights only for what needs autograd (the heatmaps).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..faces import crop_face
from ..models import LazyModel, ModelConfig, TemporalDeepfakeModel
from ..models.onnx_model import OnnxModel
from ..models.temporal_model import split_windows, windows_by_length
from ..options import PRECISIONS

NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of x86 CPUs that compute bf16 natively (AVX-512 BF16, AMX); without them oneDNN emulates bf16
and it is slower than fp32."""


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The x86 feature flags of a /proc/cpuinfo text (its first ``flags`` line; empty when it has none)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere, which makes ``auto`` choose fp32)."""
    try:
        return parse_cpu_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()


def auto_precision(device_type: str, flags: Collection[str] = (), cuda_bf16: bool = False) -> str:
    """What ``--precision auto`` means: bf16 on a CPU with native bf16 (``flags`` holds AVX-512 BF16 or AMX) and on
    a GPU with bf16 (``cuda_bf16``), fp16 on an older GPU, fp32 elsewhere."""
    if device_type == "cuda":
        return "bf16" if cuda_bf16 else "fp16"
    if device_type == "cpu" and NATIVE_BF16_CPU_FLAGS & set(flags):
        return "bf16"
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision (fp32, bf16 or fp16) of ``precision`` on ``device``; ValueError for fp16 on a CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return auto_precision(device.type, cpu_flags() if device.type == "cpu" else (), cuda_bf16)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a CUDA device; use bf16 on the CPU")
    return precision


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    resolved = resolve_precision(precision, device)
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[resolved]


class FaceEncoder:
    """Crops faces out of frames, turns them into the model's per-frame features, and scores tracks of features.

    ``crop`` cuts one face (square, ``margin`` x its box, resized to the model's input); ``to_batch`` normalises
    uint8 RGB crops into a channels-last tensor; ``encode`` runs the CNN part of the model on them (under autocast
    when ``precision`` asks for it) and returns float32 (N, C) features; ``predict_windows``, ``predict_track`` and
    ``stream_step`` run the temporal head (the RNN and the dense layers, in fp32).

    ``model``: the model, or a ``LazyModel`` of it, built when ``model`` is first asked for.
    """

    runtime = "torch"

    def __init__(self, model: TemporalDeepfakeModel | LazyModel, device: torch.device, margin: float,
                 precision: str) -> None:
        self._lazy_model = model if isinstance(model, LazyModel) else LazyModel.of(model)
        self.config: ModelConfig = self._lazy_model.config
        self.device = device
        self.margin = margin
        self.crop_size = self.config.input_size
        self.precision = resolve_precision(precision, device)
        self.autocast_dtype = autocast_dtype(self.precision, device)
        self.mean = torch.tensor(self.config.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(self.config.std, device=device).view(1, 3, 1, 1) * 255.0

    @property
    def model(self) -> TemporalDeepfakeModel:
        """The PyTorch model (built now if it was given as a ``LazyModel`` not built yet)."""
        return self._lazy_model.get()

    def crop(self, image: np.ndarray, box: Sequence[float] | np.ndarray) -> np.ndarray:
        """The model's RGB input crop of the face at ``box`` in BGR ``image``."""
        return crop_face(image, box, self.margin, self.crop_size)

    def to_batch(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> a normalised (N, 3, H, W) float tensor on the device, channels-last."""
        batch = torch.from_numpy(np.stack(crops)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).float()
        batch = (batch - self.mean) / self.std
        return batch.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def encode(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB crops -> float32 (N, C) per-frame features."""
        batch = self.to_batch(crops)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            features = self.model.forward_features(batch)
        return features.float()

    @torch.inference_mode()
    def predict_windows(self, windows: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """p(fake) for each frame of each (T_i, C) window of features, each from a fresh RNN state (windows of one
        length in one pass)."""
        return self.model.predict_windows(windows)

    def predict_track(self, features: torch.Tensor, window: int) -> torch.Tensor:
        """p(fake) for each frame of one track's (T, C) features, in independent windows of ``window`` frames."""
        chunks = split_windows(features, window)
        return torch.cat(self.predict_windows(chunks)) if chunks else features.new_zeros(0)

    @torch.inference_mode()
    def stream_step(self, features: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """(N,) p(fake) for one new frame of each of N tracks, with the RNN state carried from the previous call."""
        return self.model.stream_step(features, state)

    def describe(self) -> dict[str, Any]:
        """How the model runs, for the summary's model record."""
        return {"runtime": self.runtime, "precision": self.precision}


class OnnxFaceEncoder(FaceEncoder):
    """``FaceEncoder`` whose CNN and temporal head run in ONNX Runtime (``OnnxModel``): the same crops go in, the
    same features and scores come out. ``model`` (the PyTorch model of the weights the file was exported from, best
    given as a ``LazyModel``) is for the heatmaps, which need autograd: scoring never builds it.

    ``precision``: ``auto`` or the file's own (fp32 or int8); the file fixes it, so another one is refused.
    """

    runtime = "onnx"

    def __init__(self, model: TemporalDeepfakeModel | LazyModel, device: torch.device, margin: float, precision: str,
                 onnx_model: OnnxModel) -> None:
        if precision not in ("auto", onnx_model.precision):
            raise ValueError(f"--precision {precision} is for the torch runtime; {onnx_model.path.name} runs in "
                             f"{onnx_model.precision}, the precision it was exported in (use --precision auto)")
        super().__init__(model, device, margin, "fp32")
        self.onnx_model = onnx_model
        self.precision = onnx_model.precision

    def encode(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(self.onnx_model.features(np.stack(crops)))

    def predict_windows(self, windows: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        p_fake: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        for positions in windows_by_length(windows):
            batch = np.stack([windows[position].detach().cpu().float().numpy() for position in positions])
            scores, _ = self.onnx_model.temporal(batch)
            for position, row in zip(positions, scores):
                p_fake[position] = torch.from_numpy(row)
        return p_fake

    def stream_step(self, features: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if self.config.bidirectional:
            raise ValueError("a bidirectional model needs future frames: streaming needs a unidirectional RNN")
        array = features.detach().cpu().float().numpy()[:, None]
        p_fake, state = self.onnx_model.temporal(array, state)
        return torch.from_numpy(p_fake[:, 0]), state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "onnx": self.onnx_model.describe()}
