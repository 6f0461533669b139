"""The project's detector: CNN backbone -> two 3x3 convs -> LSTM/GRU over frames -> dense head, a prediction per frame."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backbone import create_backbone
from .config import ModelConfig


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FaceRegionPool(nn.Module):
    """Average of a (N, C, H, W) map over an ellipse covering the face of a fakescope crop -> (N, C).

    Crops are squares of 1.3x the detector's face box around its centre, so the face box spans the central 77% of
    the crop; the ellipse (semi-axes 36% of the width and 42% of the height, centred 2.5% below the middle) covers
    forehead to chin and leaves out the corners, where background, hair and shoulders are.
    """

    CENTRE_Y = 0.525
    SEMI_AXIS_X = 0.36
    SEMI_AXIS_Y = 0.42
    # Vectors of C channels the pool returns per frame.
    outputs_per_channel = 1

    def __init__(self) -> None:
        super().__init__()
        self._weights: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    @classmethod
    def mask(cls, height: int, width: int) -> torch.Tensor:
        """(H, W) float mask, 1 inside the face ellipse (cell centres), 0 outside; never empty."""
        y = (torch.arange(height, dtype=torch.float32) + 0.5) / height
        x = (torch.arange(width, dtype=torch.float32) + 0.5) / width
        inside = ((x[None, :] - 0.5) / cls.SEMI_AXIS_X) ** 2 + ((y[:, None] - cls.CENTRE_Y) / cls.SEMI_AXIS_Y) ** 2 <= 1
        if not inside.any():  # a 1x1 map: its only cell is the face
            inside[height // 2, width // 2] = True
        return inside.float()

    @classmethod
    def region_weights(cls, height: int, width: int) -> torch.Tensor:
        """(K, H, W) weights, one map per output vector: the face mask divided by its sum (the face average)."""
        mask = cls.mask(height, width)
        return (mask / mask.sum())[None]

    def weights(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``region_weights`` on ``device`` in ``dtype``, cached per map size."""
        key = (height, width, device, dtype)
        weights = self._weights.get(key)
        if weights is None:
            # Built outside inference mode even when first needed inside it (a scan), so that a later pass with
            # autograd (the heatmaps) can use the cached weights too.
            with torch.inference_mode(False):
                weights = self.region_weights(height, width).to(device=device, dtype=dtype)
            self._weights[key] = weights
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_with_weights(x, self.weights(x.shape[-2], x.shape[-1], x.device, x.dtype))


class FaceContrastPool(FaceRegionPool):
    """The face average and its difference from the average around the face -> (N, 2C).

    A person's skin, lighting and camera shift the whole crop alike, and a blended or swapped face differs from
    its surroundings: the difference keeps what sets the face apart from the rest of the same frame.
    """

    outputs_per_channel = 2

    @classmethod
    def region_weights(cls, height: int, width: int) -> torch.Tensor:
        mask = cls.mask(height, width)
        face = mask / mask.sum()
        around = 1.0 - mask
        if around.sum() == 0:  # a map too small to have cells around the face (1x1) has no contrast
            return torch.stack([face, torch.zeros_like(face)])
        return torch.stack([face, face - around / around.sum()])


def pool_with_weights(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) maps and (K, H, W) weights -> (N, K*C): the K weighted sums of each channel, K-major."""
    return (x[:, None] * weights[None, :, None]).sum(dim=(-2, -1)).flatten(1)


_FACE_POOLS: dict[str, type[FaceRegionPool]] = {"face": FaceRegionPool, "face_contrast": FaceContrastPool}


def create_pool(kind: str) -> nn.Module:
    """The module that turns (N, C, H, W) conv maps into (N, C') frame vectors for ``ModelConfig.pool``."""
    pool_class = _FACE_POOLS.get(kind)
    return pool_class() if pool_class else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def pool_outputs_per_channel(kind: str) -> int:
    """C' / C of ``create_pool(kind)``: known from the config alone (ONNX export swaps the pool module)."""
    pool_class = _FACE_POOLS.get(kind)
    return pool_class.outputs_per_channel if pool_class else 1


class BackboneFeatureMap(nn.Module):
    """The backbone's final feature map as a module of its own, called by the model's forward pass, so that hooks
    (captum's class-activation maps) see the real forward whatever the backbone's internals are.

    It holds its model without registering it (no parameters of its own: state dicts and ``.to()`` are unchanged).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.__dict__["_model"] = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.__dict__["_model"].backbone.forward_features(frames)


class TemporalDeepfakeModel(nn.Module):
    """Per-frame real/fake logits for sequences of face crops of one track.

    ``forward(clips)`` takes (B, T, 3, H, W) normalised crops and returns (B, T, 2) logits. The stages are also exposed
    separately so that inference can batch frames through the CNN and run the RNN per track in windows:
    ``forward_features`` (N, 3, H, W) -> (N, C) and ``forward_temporal`` (B, T, C) -> (B, T, 2).
    ``forward_features`` is ``feature_map`` (the backbone's map, a hookable module), then ``forward_neck`` (the convs
    and ``pool``).
    """

    def __init__(
        self,
        config: ModelConfig,
        pretrained: bool = False,
        backbone_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = create_backbone(
            config.backbone, pretrained=pretrained, weights=backbone_weights, bn_eps=config.backbone_bn_eps,
            stage=config.backbone_stage,
        )
        channels = [self.backbone.num_features, *config.conv_channels]
        self.convs = nn.Sequential(*[_conv_bn_relu(a, b) for a, b in zip(channels[:-1], channels[1:])])
        self.pool = create_pool(config.pool)
        rnn_class = nn.LSTM if config.rnn == "lstm" else nn.GRU
        self.rnn = rnn_class(
            input_size=self.feature_dim,
            hidden_size=config.hidden_size,
            num_layers=config.rnn_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
        )
        layers: list[nn.Module] = []
        width = config.hidden_size * (2 if config.bidirectional else 1)
        for dim in config.head_dims:
            layers += [nn.Linear(width, dim), nn.ReLU(inplace=True), nn.Dropout(config.dropout)]
            width = dim
        layers.append(nn.Linear(width, config.num_classes))
        self.head = nn.Sequential(*layers)
        self.__dict__["feature_map"] = BackboneFeatureMap(self)  # not a child: its backbone is already one

    @property
    def feature_dim(self) -> int:
        """Length of the per-frame vector the pool hands to the RNN."""
        return self.config.conv_channels[-1] * pool_outputs_per_channel(self.config.pool)

    def forward_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised crops -> (N, C) per-frame features (backbone, convs, pool over crop or face)."""
        return self.forward_neck(self.feature_map(frames))

    def forward_neck(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, C_backbone, h, w) backbone maps -> (N, C) per-frame features (convs, then the pool). Training on
        cached maps of a frozen backbone starts here."""
        return self.pool(self.convs(maps))

    def forward_temporal(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, C) per-frame features of one track each -> (B, T, 2) logits."""
        sequence, _ = self.rnn(features)
        return self.forward_head(sequence)

    def forward_head(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.head(sequence)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, steps = clips.shape[:2]
        features = self.forward_features(clips.flatten(0, 1))
        return self.forward_temporal(features.view(batch, steps, -1))

    @torch.no_grad()
    def stream_step(self, features: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Causal inference: p(fake) for one new frame of each of N tracks, carrying the RNN state.

        ``features`` is (N, C) (one frame per track), ``state`` what the previous call returned for the same N
        tracks in the same order (None to start). Returns ((N,) p_fake, new state). Bidirectional models look at
        future frames and cannot stream.
        """
        if self.config.bidirectional:
            raise ValueError("a bidirectional model needs future frames: streaming needs a unidirectional RNN")
        sequence, state = self.rnn(features.unsqueeze(1), state)
        return self.forward_head(sequence[:, 0]).softmax(-1)[:, 1], state

    @torch.no_grad()
    def predict_windows(self, windows: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """p(fake) for each frame of each (T_i, C) window of features, each window from a fresh RNN state.

        Windows of one length go through the RNN together: on a CPU one RNN call costs far more than its
        arithmetic (oneDNN prepares the weights on every call), so one call per window of a one-frame-window
        model cost more than the detector. Equal to ``predict_track`` per window up to float rounding.
        """
        p_fake: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        for positions in windows_by_length(windows):
            batch = torch.stack([windows[position] for position in positions])
            for position, row in zip(positions, self.forward_temporal(batch).softmax(-1)[:, :, 1]):
                p_fake[position] = row
        return p_fake

    @torch.no_grad()
    def predict_track(self, features: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """p(fake) for each frame of one track from its (T, C) features, in independent windows of ``window`` frames.

        Each window starts from a fresh RNN state, as in training on clips, so memory and behaviour do not depend on
        the video's length.
        """
        chunks = split_windows(features, window or self.config.window)
        return torch.cat(self.predict_windows(chunks)) if chunks else features.new_zeros(0)


def split_windows(features: torch.Tensor, window: int) -> list[torch.Tensor]:
    """A track's (T, C) features cut into consecutive windows of ``window`` frames (the last one may be shorter)."""
    return [features[start : start + window] for start in range(0, features.shape[0], window)]


def windows_by_length(windows: Sequence[torch.Tensor]) -> list[list[int]]:
    """The positions of the (T, C) ``windows`` grouped by T (windows of one length go through an RNN together)."""
    positions_by_length: dict[int, list[int]] = {}
    for position, window in enumerate(windows):
        if window.ndim != 2 or window.shape[0] == 0:
            raise ValueError(f"each window must be (T, C) with T >= 1, got {tuple(window.shape)}")
        positions_by_length.setdefault(window.shape[0], []).append(position)
    return list(positions_by_length.values())
