"""The registered models: each function returns the default ModelConfig of the model of its name."""
from __future__ import annotations

from .config import ModelConfig
from .registry import register_model


@register_model
def xception_lstm() -> ModelConfig:
    """The project's design: ImageNet Xception, convs 128/256, LSTM 256, dense 512/256, dropout 0.3."""
    return ModelConfig(backbone="legacy_xception", rnn="lstm")


@register_model
def xception_mid_lstm() -> ModelConfig:
    """The design's model on Xception's middle-flow features (through block8, 728 channels at 14x14), pooled over the
    face.

    With a few training identities, ImageNet Xception's mid-level features separate real from fake faces of unseen
    people far better than its final ones, and averaging them over the face rather than the whole crop keeps the
    background out of the verdict (docs/MODEL_CARD.md). The cut backbone costs ~40% less compute.
    """
    return ModelConfig(backbone="legacy_xception", backbone_stage="block8", rnn="lstm", pool="face")


@register_model
def xception_mid_gru() -> ModelConfig:
    return ModelConfig(backbone="legacy_xception", backbone_stage="block8", rnn="gru", pool="face")


@register_model
def xception_gru() -> ModelConfig:
    return ModelConfig(backbone="legacy_xception", rnn="gru")


@register_model
def xception_bilstm() -> ModelConfig:
    return ModelConfig(backbone="legacy_xception", rnn="lstm", bidirectional=True)


@register_model
def tiny_lstm() -> ModelConfig:
    """A minute model with the same structure, for tests and smoke runs (timm's ``test_resnet`` backbone)."""
    return ModelConfig(
        backbone="test_resnet",
        input_size=64,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        backbone_bn_eps=None,
        conv_channels=(16, 32),
        hidden_size=16,
        head_dims=(32, 16),
        window=8,
    )
