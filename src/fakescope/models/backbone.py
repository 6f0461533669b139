"""Backbone creation and initialisation from timm's hub weights or a local file (no network needed)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

log = logging.getLogger(__name__)

BACKBONE_WEIGHTS_ENV = "FAKESCOPE_BACKBONE_WEIGHTS"


class BackboneWeightsError(RuntimeError):
    """Pretrained backbone weights were asked for but could not be loaded."""


class StageBackbone(nn.Module):
    """A backbone cut after one of its stages: its child modules up to ``stage``, run in order.

    The children keep their names, so state dicts of the cut backbone are those of the whole one minus the dropped
    stages. Only for backbones whose ``forward_features`` is their children in order (legacy_xception, test_resnet).
    """

    def __init__(self, backbone: nn.Module, stage: str) -> None:
        super().__init__()
        names = [name for name, _ in backbone.named_children()]
        if stage not in names:
            raise ValueError(f"backbone has no stage {stage!r}; its stages: {', '.join(names)}")
        for name in names[: names.index(stage) + 1]:
            self.add_module(name, getattr(backbone, name))
        self.stage = stage
        self.num_features = _output_channels(getattr(self, stage)) or self._probe_channels()

    def _probe_channels(self) -> int:
        with torch.no_grad():
            was_training = self.training
            self.eval()
            probe = self.forward_features(torch.zeros(1, 3, 64, 64))
            self.train(was_training)
        return int(probe.shape[1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def stages_after(self, stage: str) -> nn.Sequential:
        """The stages after ``stage``, in order (the same modules, not copies): maps cached at ``stage`` run through
        them to become this backbone's output, and training them fine-tunes this backbone."""
        names = [name for name, _ in self.named_children()]
        if stage not in names:
            raise ValueError(f"backbone has no stage {stage!r}; its stages: {', '.join(names)}")
        return nn.Sequential(*[getattr(self, name) for name in names[names.index(stage) + 1 :]])


def _output_channels(stage: nn.Module) -> int | None:
    """Channels out of a stage of conv blocks, read from its layers: the width of its last convolution or batch norm
    (which end a block's main path, and its shortcut's); None when it has neither. Saves a probing forward pass,
    whose first-call kernel set-up cost more CPU than the rest of loading a checkpoint."""
    widths = [module.out_channels if isinstance(module, nn.modules.conv._ConvNd) else module.num_features
              for module in stage.modules()
              if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm))]
    return int(widths[-1]) if widths else None


def create_backbone(
    name: str,
    pretrained: bool = False,
    weights: str | Path | None = None,
    bn_eps: float | None = None,
    stage: str | None = None,
) -> nn.Module:
    """Create a timm feature extractor (no pooling, no classifier), cut after ``stage`` when given.

    Weights: ``weights`` (a local safetensors or torch state dict), else ``$FAKESCOPE_BACKBONE_WEIGHTS``, else timm's
    hub weights when ``pretrained`` (needs a network). Without any of these the backbone is randomly initialised.
    """
    # Imported here, not with the module: timm (and torchvision with it) takes seconds to import, and a scan on ONNX
    # Runtime builds no backbone.
    import timm

    weights = weights or os.environ.get(BACKBONE_WEIGHTS_ENV) or None
    use_hub = pretrained and weights is None
    try:
        model = timm.create_model(name, pretrained=use_hub, num_classes=0, global_pool="")
    except RuntimeError as error:
        raise ValueError(f"unknown backbone {name!r}: {error}") from error
    except OSError as error:  # URLError and friends when no hub can be reached
        raise BackboneWeightsError(
            f"could not download pretrained weights for {name!r} ({error}); pass a local file with "
            f"--backbone-weights or ${BACKBONE_WEIGHTS_ENV}"
        ) from error
    if weights is not None:
        load_backbone_weights(model, weights)
    if bn_eps is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eps = bn_eps
    return StageBackbone(model, stage) if stage is not None else model


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a backbone state dict; classifier keys are ignored, any other mismatch is an error."""
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head."))}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BackboneWeightsError(
            f"{path} does not match the backbone: {len(result.missing_keys)} missing keys "
            f"(e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})"
        )
    log.info("loaded backbone weights from %s", path)
