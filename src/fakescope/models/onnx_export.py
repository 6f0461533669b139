"""Exporting a ``TemporalDeepfakeModel`` to ONNX: the face encoder (uint8 RGB crops -> features, normalisation
inside the graph), optionally statically quantised to int8, and the temporal head (features + RNN state -> p_fake +
state), each with dynamic batch (and sequence) axes and fakescope's metadata (``onnx_model`` reads them back).
"""
from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import AtomicOutput
from .checkpoint import CheckpointMeta, sha256_file
from .onnx_model import (
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    HEAD_INPUTS,
    HEAD_OUTPUTS,
    INSTALL_HINT,
    KEY_CONFIG,
    KEY_FORMAT,
    KEY_HEAD_FILE,
    KEY_HEAD_SHA256,
    KEY_INPUT,
    KEY_PRECISION,
    KEY_QUANTISATION,
    KEY_ROLE,
    KEY_SOURCE_NAME,
    KEY_SOURCE_SHA256,
    KEY_THRESHOLD,
    KEY_TRAINED,
    ONNX_FORMAT_VERSION,
    OnnxModelError,
    head_path_for,
    import_onnxruntime,
)
from .temporal_model import FaceRegionPool, TemporalDeepfakeModel, pool_with_weights

OPSET = 17
# Crops per calibration batch: one, so that "average" averages the ranges of single crops. The calibrator keeps
# only each batch's minimum and maximum per tensor, so memory does not grow with the number of crops.
CALIBRATION_BATCH = 1


@dataclass(frozen=True)
class Int8Settings:
    """How the encoder is quantised. The defaults were measured best on an AVX-512 VNNI CPU (the README's "Faster
    runtimes"; benchmarks/onnx_runtime.py): QDQ format, uint8 activations and int8 weights (the u8s8 kernels of
    VNNI), one scale per output channel, activation ranges averaged over the calibration crops. Always the QDQ
    format: onnxruntime's QOperator form of this model (QLinearConv ...) scored far off here (mean |delta p_fake|
    0.52 on 688 face crops) at no gain in speed."""

    per_channel: bool = True
    activations: str = "uint8"  # "uint8" or "int8"
    # "minmax": each activation's range over all calibration crops; "average": the mean over the crops of each
    # crop's range (onnxruntime's moving average), which a few outliers do not stretch. (onnxruntime's percentile and
    # entropy methods hold every activation of every crop in memory, 20 GB for 172 crops of Xception: not offered.)
    calibration_method: str = "average"
    # Modules (by their path in the model: "convs", "block1", "conv1") whose nodes stay in float.
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value, allowed in (("activations", self.activations, ("uint8", "int8")),
                                     ("calibration_method", self.calibration_method, ("minmax", "average"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass
class ExportResult:
    """The files an export wrote and how."""

    encoder: Path
    head: Path
    precision: str
    quantisation: dict[str, Any] | None = None
    sizes: dict[str, int] = field(default_factory=dict)


class _EncoderGraph(nn.Module):
    """(N, H, W, 3) uint8 RGB crops -> (N, C) features: ``FaceEncoder.to_batch``'s normalisation, then the model's
    ``forward_features``, so that a user of the file needs nothing but the crops."""

    def __init__(self, model: TemporalDeepfakeModel) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        batch = (crops.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return self.model.forward_features(batch)


class _ConstantMaskPool(nn.Module):
    """``FaceRegionPool`` for maps of one size: the weighted sums of each map over its (K, H, W) region weights."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_with_weights(x, self.weights)


class _HeadGraph(nn.Module):
    """(B, T, C) features with the RNN state -> (B, T) p_fake and the state after the last frame."""

    def __init__(self, model: TemporalDeepfakeModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        initial = (state[0], state[1]) if len(state) == 2 else state[0]
        sequence, final = self.model.rnn(features, initial)
        p_fake = self.model.forward_head(sequence).softmax(-1)[..., 1]
        return (p_fake, *final) if isinstance(final, tuple) else (p_fake, final)


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise OnnxModelError(f"exporting to ONNX needs the onnx package: {INSTALL_HINT}") from error
    return onnx


def _torch_export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    module.eval()  # the exporter restores the module's mode afterwards: it must be eval already
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter (the torch.export one needs onnxscript) is deprecated, and the tracer warns
        # about the face pool's mask, which depends on the map's size only and rightly becomes a constant.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, opset_version=OPSET,
                          do_constant_folding=True)


def _export_encoder(model: TemporalDeepfakeModel, path: Path) -> None:
    size = model.config.input_size
    example = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    if isinstance(model.pool, FaceRegionPool):
        # The input size is fixed, so the face pool's mask is one constant; traced, it would be arithmetic on the
        # map's shape, which int8 quantisation rounds, moving the ellipse's edge.
        with torch.no_grad():
            maps = model.convs(model.feature_map(torch.zeros(1, 3, size, size)))
        model.pool = _ConstantMaskPool(model.pool.weights(maps.shape[-2], maps.shape[-1], maps.device, maps.dtype))
    _torch_export(_EncoderGraph(model), (example,), path, [ENCODER_INPUT], [ENCODER_OUTPUT],
                  {ENCODER_INPUT: {0: "crops"}, ENCODER_OUTPUT: {0: "crops"}})


def _export_head(model: TemporalDeepfakeModel, path: Path) -> None:
    config = model.config
    rows = config.rnn_layers * (2 if config.bidirectional else 1)
    count = 2 if config.rnn == "lstm" else 1
    features = torch.randn(2, 3, model.feature_dim)
    state = tuple(torch.zeros(rows, 2, config.hidden_size) for _ in range(count))
    inputs, outputs = HEAD_INPUTS[: 1 + count], HEAD_OUTPUTS[: 1 + count]
    axes = {inputs[0]: {0: "tracks", 1: "frames"}, outputs[0]: {0: "tracks", 1: "frames"}}
    axes.update({name: {1: "tracks"} for name in (*inputs[1:], *outputs[1:])})
    _torch_export(_HeadGraph(model), (features, *state), path, inputs, outputs, axes)


class _CalibrationReader:
    """Batches of calibration crops for onnxruntime's calibrator (its CalibrationDataReader protocol)."""

    def __init__(self, crops: Sequence[np.ndarray]) -> None:
        self.batches = [crops[start : start + CALIBRATION_BATCH] for start in range(0, len(crops), CALIBRATION_BATCH)]
        self.rewind()

    def rewind(self) -> None:
        self._pending: Iterator[Sequence[np.ndarray]] = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._pending, None)
        return None if batch is None else {ENCODER_INPUT: np.stack(batch)}


def _quantise(source: Path, target: Path, crops: Sequence[np.ndarray], settings: Int8Settings,
              workdir: Path) -> None:
    import_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    prepared = workdir / "prepared.onnx"
    try:
        # Shape inference and graph optimisation first, as onnxruntime recommends for static quantisation.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - an optional step: quantise the plain export instead
        prepared = source
    onnx = _import_onnx()
    graph = onnx.load(str(prepared), load_external_data=False).graph
    kept = [node.name for node in graph.node
            if any(f"/{module}/" in f"{node.name}/" for module in settings.keep_float)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(
            str(prepared), str(target), _CalibrationReader(crops),
            quant_format=QuantFormat.QDQ,
            per_channel=settings.per_channel,
            activation_type=QuantType.QUInt8 if settings.activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=kept,
            extra_options={"CalibMovingAverage": settings.calibration_method == "average"},
        )


def _write_with_metadata(source: Path, target: Path, metadata: dict[str, str]) -> None:
    onnx = _import_onnx()
    model = onnx.load(str(source))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "fakescope"
    with AtomicOutput(target) as output:
        onnx.save(model, str(output.temp_path))


def export_onnx(
    model: TemporalDeepfakeModel,
    meta: CheckpointMeta,
    out: str | Path,
    int8: bool = False,
    calibration: Sequence[np.ndarray] = (),
    settings: Int8Settings | None = None,
    calibration_source: str = "",
) -> ExportResult:
    """Write ``out`` (the encoder, ``.onnx``) and its head graph beside it (``head_path_for(out)``).

    ``int8``: quantise the encoder statically with ``calibration``, uint8 RGB face crops of the model's input size
    (``calibration_source`` says where they came from, for the metadata). The head stays fp32: it is a small
    fraction of the work. ``meta`` gives the threshold and the source weights' sha256 recorded in the metadata.
    """
    _import_onnx()
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"the exported file's name must end in .onnx, got {out.name}")
    if int8 and not calibration:
        raise ValueError("int8 quantisation needs calibration crops")
    size = model.config.input_size
    if any(crop.shape != (size, size, 3) or crop.dtype != np.uint8 for crop in calibration):
        raise ValueError(f"calibration crops must be ({size}, {size}, 3) uint8 RGB")
    settings = settings or Int8Settings()
    model = copy.deepcopy(model).cpu().float().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    head_target = head_path_for(out)
    with tempfile.TemporaryDirectory(prefix=".fakescope-export-", dir=out.parent) as tmp:
        workdir = Path(tmp)
        encoder_fp32, head_fp32 = workdir / "encoder.onnx", workdir / "head.onnx"
        _export_encoder(model, encoder_fp32)
        _export_head(model, head_fp32)
        quantisation = None
        encoder = encoder_fp32
        if int8:
            encoder = workdir / "encoder-int8.onnx"
            _quantise(encoder_fp32, encoder, calibration, settings, workdir)
            quantisation = {"format": "QDQ", **asdict(settings), "weights": "int8", "calibration_crops": len(calibration),
                            "calibration_source": calibration_source}
        common = {
            KEY_FORMAT: ONNX_FORMAT_VERSION,
            KEY_CONFIG: model.config.to_json(),
            KEY_THRESHOLD: repr(float(meta.threshold)),
            KEY_TRAINED: "true" if meta.trained else "false",
            KEY_SOURCE_SHA256: meta.sha256,
            KEY_SOURCE_NAME: Path(meta.path).name if meta.path else "",
        }
        _write_with_metadata(head_fp32, head_target, {**common, KEY_ROLE: "head", KEY_PRECISION: "fp32"})
        encoder_metadata = {
            **common,
            KEY_ROLE: "encoder",
            KEY_PRECISION: "int8" if int8 else "fp32",
            KEY_INPUT: json.dumps({
                "name": ENCODER_INPUT, "layout": "NHWC", "dtype": "uint8", "color": "RGB", "size": size,
                "mean": list(model.config.mean), "std": list(model.config.std),
                "normalisation": "inside the graph: (crop / 255 - mean) / std",
                "crop": "square of margin x the face box around its centre (fakescope's crop_face, margin 1.3)",
            }),
            KEY_HEAD_FILE: head_target.name,
            KEY_HEAD_SHA256: sha256_file(head_target),
        }
        if quantisation is not None:
            encoder_metadata[KEY_QUANTISATION] = json.dumps(quantisation)
        _write_with_metadata(encoder, out, encoder_metadata)
    return ExportResult(out, head_target, "int8" if int8 else "fp32", quantisation,
                        {"encoder": out.stat().st_size, "head": head_target.stat().st_size})
