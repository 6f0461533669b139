"""Class-activation heatmaps for the FAKE class, through the temporal model, with captum (HiResCAM or Grad-CAM).

A window of T crops of one face track goes through the CNN as a batch, then through the RNN as one sequence, giving
per-frame logits (T, 2). Captum back-propagates the *sum* of the T fake logits, so frame t's map also holds the
gradient that other frames' logits send to frame t through the RNN (the later frames' logits for a causal RNN, all
frames' for a bidirectional one). This is a close variant of a strict per-frame Grad-CAM (which would need T
backward passes per window), and arguably the more faithful one, since each frame's score does mix several frames.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
from captum.attr import LayerGradCam, LayerGradientXActivation
from torch import nn

from ..options import CAM_METHODS
from ..results import FrameRecord
from ..video import FrameSelection, MediaReader, MediaSource
from .encoder import FaceEncoder

FAKE_CLASS = 1
STORED_CAM_SIZE = 28  # maps are kept this small per face-frame; they are smooth, so nothing is lost when upsampled

HeatmapKey = tuple[int, int]  # (frame_index, track_id)


@contextmanager
def _frozen(module: nn.Module):
    """No parameter of ``module`` requires grad inside the block: autograd then keeps no backbone activations."""
    flags = [(parameter, parameter.requires_grad) for parameter in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


class TrackGradCam:
    """Fake-class class-activation maps for windows of crops of one face track.

    ``method``:
      * ``"hirescam"`` (default): gradient x activation at each cell, summed over channels (HiResCAM, Draelos & Carin
        2020; captum's ``LayerGradientXActivation``). Where the model averages its map over a region (the face pool),
        this is exactly each cell's share of the fake logit, so it cannot light up what the model ignores.
      * ``"gradcam"``: Grad-CAM proper (captum's ``LayerGradCam``): activations weighted by each channel's *mean*
        gradient, which also lights up cells whose channels matter elsewhere, e.g. background the model never pools.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | None = None, method: str = "hirescam") -> None:
        """``layer``: the module whose output is explained (default: the model's ``feature_map``, the backbone's
        final map, which the model's own ``forward_features`` calls)."""
        if method not in CAM_METHODS:
            raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
        self.model = model
        self.method = method
        self.layer = layer if layer is not None else model.feature_map
        attribution_class = LayerGradCam if method == "gradcam" else LayerGradientXActivation
        self.attribution = attribution_class(self._window_logits, self.layer)

    def attribute(self, frames: torch.Tensor) -> torch.Tensor:
        """Signed (T, 1, h, w) maps at the explained layer's resolution, before any ReLU or normalisation."""
        if self.method == "gradcam":
            return self.attribution.attribute(frames, target=FAKE_CLASS, relu_attributions=False)
        return self.attribution.attribute(frames, target=FAKE_CLASS).sum(1, keepdim=True)

    def _window_logits(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) crops of one track -> (T, 2) per-frame logits, through the model's own forward passes."""
        features = self.model.forward_features(frames)
        # cuDNN implements RNN backward only in training mode; its native kernels work in eval mode too. Only the
        # RNN needs them: the CNN keeps cuDNN's fast convolutions.
        with torch.backends.cudnn.flags(enabled=False):
            return self.model.forward_temporal(features.unsqueeze(0))[0]

    def __call__(self, frames: torch.Tensor, size: int | None = None) -> np.ndarray:
        """(T, 3, H, W) normalised crops -> (T, size, size) float32 maps in [0, 1] (default size: the crop's)."""
        size = size or frames.shape[-1]
        was_training = self.model.training
        self.model.eval()  # dropout off, batch norm on its running statistics
        try:
            with torch.inference_mode(False), torch.enable_grad():
                with _frozen(self.model.backbone):
                    frames = frames.detach().clone().float()
                    cams = self.attribute(frames)
        finally:
            self.model.train(was_training)
        cams = cams.detach().float()[:, 0].relu()
        peak = cams.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
        cams = (cams / peak).clamp(0.0, 1.0)
        cams = nn.functional.interpolate(cams.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False)
        return cams[:, 0].cpu().numpy()


def compute_heatmaps(
    encoder: FaceEncoder,
    source: MediaSource | str | Path,
    frames: list[FrameRecord],
    selection: FrameSelection,
    window: int,
    on_frame: Callable[[], None] | None = None,
    method: str = "hirescam",
) -> dict[HeatmapKey, np.ndarray]:
    """The heatmap pass: re-reads the analysed frames of ``source``, re-crops every face, and computes its CAM in
    the same per-track windows as the analysis. Returns small float16 maps keyed by (frame_index, track_id).

    Memory stays flat: at most one window of crops per live track is held.
    """
    wanted = {frame.frame_index: frame for frame in frames if frame.faces}
    last_frame_of_track: dict[int, int] = {}
    for frame in frames:
        for face in frame.faces:
            last_frame_of_track[face.track_id] = frame.frame_index
    grad_cam = TrackGradCam(encoder.model, method=method)
    crop_size = encoder.crop_size
    buffers: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    heatmaps: dict[HeatmapKey, np.ndarray] = {}

    def flush(track_id: int) -> None:
        buffer = buffers.pop(track_id, [])
        if not buffer:
            return
        cams = grad_cam(encoder.to_batch([crop for _, crop in buffer]), size=crop_size)
        for (frame_index, _), cam in zip(buffer, cams):
            small = cv2.resize(cam, (STORED_CAM_SIZE, STORED_CAM_SIZE), interpolation=cv2.INTER_AREA)
            heatmaps[(frame_index, track_id)] = small.astype(np.float16)

    with MediaReader(source, selection=selection, decode_all=False) as reader:
        for frame in reader:
            record = wanted.get(frame.index)
            if record is None:
                continue
            for face in record.faces:
                buffer = buffers[face.track_id]
                buffer.append((frame.index, encoder.crop(frame.image, face.box)))
                if len(buffer) == window or last_frame_of_track[face.track_id] == frame.index:
                    flush(face.track_id)
            if on_frame is not None:
                on_frame()
    for track_id in list(buffers):
        flush(track_id)
    return heatmaps
