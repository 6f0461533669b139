"""Model configuration: everything needed to rebuild an architecture, saved with every checkpoint."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

RnnType = Literal["lstm", "gru"]
PoolType = Literal["global", "face", "face_contrast"]


@dataclass
class ModelConfig:
    """Architecture of a temporal deepfake detector (backbone -> 2 convs -> RNN -> dense head, per frame)."""

    name: str = "xception_lstm"
    backbone: str = "legacy_xception"
    # The backbone's last stage in use (the name of one of its child modules, e.g. "block8" of legacy_xception); the
    # stages after it are dropped. None: the whole backbone.
    backbone_stage: str | None = None
    input_size: int = 224
    # Input normalisation on [0, 1] RGB; the Keras/timm Xception weights expect [-1, 1].
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # BatchNorm epsilon of the backbone; the Keras-trained ImageNet Xception used 1e-3. None keeps timm's default.
    backbone_bn_eps: float | None = 1e-3
    conv_channels: tuple[int, ...] = (128, 256)
    # How the conv map becomes one vector per frame: "global" averages the whole crop, "face" only an ellipse over
    # the face (the crop's background and hair carry identity and scene, not manipulation traces), "face_contrast"
    # the face average and its difference from the average around the face (twice the channels).
    pool: PoolType = "global"
    rnn: RnnType = "lstm"
    hidden_size: int = 256
    rnn_layers: int = 1
    bidirectional: bool = False
    head_dims: tuple[int, ...] = (512, 256)
    dropout: float = 0.3
    num_classes: int = 2
    # Frames per temporal window at inference: long videos are cut into windows so memory stays flat.
    window: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.conv_channels = tuple(int(v) for v in self.conv_channels)
        self.head_dims = tuple(int(v) for v in self.head_dims)
        if self.rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be 'lstm' or 'gru', got {self.rnn!r}")
        if self.pool not in get_args(PoolType):
            raise ValueError(f"pool must be one of {', '.join(get_args(PoolType))}, got {self.pool!r}")
        if self.num_classes != 2:
            raise ValueError("fakescope models are binary (real, fake): num_classes must be 2")
        if self.window < 1:
            raise ValueError("window must be at least 1 frame")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return self.from_dict({**self.to_dict(), **changes})
