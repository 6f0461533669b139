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

from ..faces import crop_face, square_crop_box
from ..inference.pipeline import CropBatcher
from ..inference.results import FrameRecord
from ..video import FrameSelection, MediaReader

FAKE_CLASS = 1
STORED_CAM_SIZE = 28  # maps are kept this small per face-frame; they are smooth, so nothing is lost when upsampled
WARM_LEVEL = 0.2  # below this (of the map's maximum) a pixel keeps its original colour
OVERLAY_ALPHA = 0.45

HeatmapKey = tuple[int, int]  # (frame_index, track_id)


class BackboneFeatureMap(nn.Module):
    """The backbone's final feature map (its last convolutional stage, after its activation) as a module of its own,
    so that captum can hook it whatever the backbone's internals are."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(frames)


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


CAM_METHODS = ("hirescam", "gradcam")


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
        """``layer``: the module whose output is explained (default: the backbone's final feature map)."""
        if method not in CAM_METHODS:
            raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
        self.model = model
        self.method = method
        self.feature_map = BackboneFeatureMap(model.backbone)
        self.layer = layer if layer is not None else self.feature_map
        attribution_class = LayerGradCam if method == "gradcam" else LayerGradientXActivation
        self.attribution = attribution_class(self._window_logits, self.layer)

    def attribute(self, frames: torch.Tensor) -> torch.Tensor:
        """Signed (T, 1, h, w) maps at the explained layer's resolution, before any ReLU or normalisation."""
        if self.method == "gradcam":
            return self.attribution.attribute(frames, target=FAKE_CLASS, relu_attributions=False)
        return self.attribution.attribute(frames, target=FAKE_CLASS).sum(1, keepdim=True)

    def _window_logits(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) crops of one track -> (T, 2) per-frame logits."""
        x = self.feature_map(frames)
        x = self.model.convs(x)
        features = self.model.pool(x)
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
    model: nn.Module,
    source: str | Path,
    frames: list[FrameRecord],
    selection: FrameSelection,
    margin: float,
    window: int,
    device: torch.device,
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
    grad_cam = TrackGradCam(model, method=method)
    to_tensor = CropBatcher(model, device)
    crop_size = model.config.input_size
    buffers: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    heatmaps: dict[HeatmapKey, np.ndarray] = {}

    def flush(track_id: int) -> None:
        buffer = buffers.pop(track_id, [])
        if not buffer:
            return
        cams = grad_cam(to_tensor([crop for _, crop in buffer]), size=crop_size)
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
                buffer.append((frame.index, crop_face(frame.image, face.box, margin, crop_size)))
                if len(buffer) == window or last_frame_of_track[face.track_id] == frame.index:
                    flush(face.track_id)
            if on_frame is not None:
                on_frame()
    for track_id in list(buffers):
        flush(track_id)
    return heatmaps


def blend_cam(image: np.ndarray, cam: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Blend ``cam`` (any size, values in [0, 1]) over the whole of BGR ``image`` in place as a JET colormap,
    only where it is warm."""
    height, width = image.shape[:2]
    cam = cv2.resize(np.asarray(cam, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.clip(cam * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (alpha * np.clip((cam - WARM_LEVEL) / (1.0 - WARM_LEVEL), 0.0, 1.0))[..., None]
    image[:] = (image * (1.0 - weight) + colours * weight).astype(np.uint8)
    return image


def overlay_cam_on_frame(
    image: np.ndarray, cam: np.ndarray, box: tuple[float, float, float, float], margin: float
) -> np.ndarray:
    """Blend ``cam`` over the face's square crop region of ``image`` (in place); parts off the frame are dropped."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(round(value)) for value in square_crop_box(box, margin))
    if x2 <= x1 or y2 <= y1:
        return image
    full = cv2.resize(np.asarray(cam, dtype=np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    left, top, right, bottom = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if right <= left or bottom <= top:
        return image
    region = image[top:bottom, left:right]
    blend_cam(region, full[top - y1 : bottom - y1, left - x1 : right - x1])
    return image
