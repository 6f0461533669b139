"""An exported model run by ONNX Runtime: the face encoder (uint8 crops -> features) and the temporal head
(features + RNN state -> p_fake + state), two graphs written by ``fakescope export --format onnx``.

The encoder file is the one a user names; its ``metadata_props`` describe the model completely (config, threshold,
window, input layout and normalisation, precision, the source checkpoint's sha256) and name the head file beside
it, with its sha256. onnxruntime is an optional dependency (``pip install 'fakescope[onnx]'``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import CheckpointError, sha256_file
from .config import ModelConfig

ONNX_FORMAT_VERSION = "1"
KEY_FORMAT = "fakescope.onnx_format"
KEY_ROLE = "fakescope.role"  # "encoder" or "head"
KEY_CONFIG = "fakescope.model_config"
KEY_THRESHOLD = "fakescope.threshold"
KEY_TRAINED = "fakescope.trained"
KEY_SOURCE_SHA256 = "fakescope.source_sha256"
KEY_SOURCE_NAME = "fakescope.source_name"
KEY_PRECISION = "fakescope.precision"  # "fp32" or "int8" (the encoder's; the head is always fp32)
KEY_INPUT = "fakescope.input"
KEY_QUANTISATION = "fakescope.quantisation"
KEY_HEAD_FILE = "fakescope.head_file"
KEY_HEAD_SHA256 = "fakescope.head_sha256"

ENCODER_INPUT = "crops"
ENCODER_OUTPUT = "features"
HEAD_INPUTS = ("features", "h0", "c0")  # c0 for an LSTM only
HEAD_OUTPUTS = ("p_fake", "hn", "cn")  # cn for an LSTM only

INSTALL_HINT = "pip install 'fakescope[onnx]'"


class OnnxModelError(CheckpointError):
    """An ONNX file that is missing, unreadable, not a fakescope export, or made for other weights; also
    onnxruntime missing. A CheckpointError, so that every command reports it as a problem with the model given."""


def import_onnxruntime() -> Any:
    """The onnxruntime module, or an OnnxModelError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise OnnxModelError(f"the ONNX runtime needs the onnxruntime package: {INSTALL_HINT}") from error
    return onnxruntime


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def head_path_for(encoder_path: str | Path) -> Path:
    """Where the head graph of the encoder file ``encoder_path`` lives: ``NAME.head.onnx`` beside ``NAME.onnx``."""
    path = Path(encoder_path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.head.onnx")


@dataclass
class OnnxModelInfo:
    """What an exported encoder file says about itself (its metadata_props, parsed)."""

    path: Path
    config: ModelConfig
    threshold: float
    trained: bool
    source_sha256: str
    source_name: str
    precision: str
    input: dict[str, Any]
    quantisation: dict[str, Any] | None
    head_file: str
    head_sha256: str

    @classmethod
    def from_metadata(cls, path: Path, metadata: dict[str, str]) -> OnnxModelInfo:
        if metadata.get(KEY_ROLE) != "encoder" or KEY_CONFIG not in metadata:
            role = metadata.get(KEY_ROLE)
            what = f"the {role} graph of a fakescope export" if role else "not a fakescope export"
            raise OnnxModelError(f"{path} is {what}: pass the encoder file that `fakescope export --format onnx` "
                                 "wrote (its --out)")
        if metadata.get(KEY_FORMAT) != ONNX_FORMAT_VERSION:
            raise OnnxModelError(f"{path} has export format {metadata.get(KEY_FORMAT)!r}; this fakescope reads "
                                 f"format {ONNX_FORMAT_VERSION}: export the model again")
        try:
            return cls(
                path=path,
                config=ModelConfig.from_dict(json.loads(metadata[KEY_CONFIG])),
                threshold=float(metadata[KEY_THRESHOLD]),
                trained=metadata.get(KEY_TRAINED) == "true",
                source_sha256=metadata[KEY_SOURCE_SHA256],
                source_name=metadata.get(KEY_SOURCE_NAME, ""),
                precision=metadata[KEY_PRECISION],
                input=json.loads(metadata[KEY_INPUT]),
                quantisation=json.loads(metadata[KEY_QUANTISATION]) if KEY_QUANTISATION in metadata else None,
                head_file=metadata[KEY_HEAD_FILE],
                head_sha256=metadata[KEY_HEAD_SHA256],
            )
        except (KeyError, ValueError, TypeError) as error:
            raise OnnxModelError(f"{path} has incomplete or invalid fakescope metadata: {error!r}") from error


def check_matches(info: OnnxModelInfo, config: ModelConfig, source_sha256: str, weights: str) -> None:
    """Refuse an ONNX export of another architecture or other weights than the checkpoint in use (its threshold,
    heatmaps and the summary's weights record would otherwise describe another model than the one scoring)."""
    ours = config.to_dict()
    theirs = info.config.to_dict()
    # The window is an inference setting a user may change; the weights and architecture may not differ.
    ours.pop("window"), theirs.pop("window")
    if ours != theirs:
        differing = sorted(key for key in ours if ours[key] != theirs.get(key))
        raise OnnxModelError(
            f"{info.path} is an export of another model ({info.config.name}; differs in {', '.join(differing)}) "
            f"than the checkpoint {weights} ({config.name})")
    if info.source_sha256 != source_sha256:
        raise OnnxModelError(
            f"{info.path} was exported from other weights (sha256 {info.source_sha256[:12]}..., "
            f"{info.source_name or 'unnamed'}) than {weights} (sha256 {source_sha256[:12]}...): pass the checkpoint it "
            "was exported from with --weights, or export this checkpoint again")


def read_onnx_metadata(path: str | Path) -> OnnxModelInfo:
    """The metadata of an exported encoder file (OnnxModelError when it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"ONNX model not found: {path}")
    metadata = dict(_session(path, ["CPUExecutionProvider"], 1).get_modelmeta().custom_metadata_map)
    return OnnxModelInfo.from_metadata(path, metadata)


def _session(path: Path, providers: list[str], threads: int) -> Any:
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Between two batches the thread pool would otherwise spin, taking the cores from decoding and detection.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types per failure
        raise OnnxModelError(f"{path} could not be loaded by ONNX Runtime: {error}") from error


def choose_providers(device_type: str) -> list[str]:
    """ONNX Runtime's providers for a scan on ``device_type``: CUDA first where the installed onnxruntime has it
    and the device is a GPU, the CPU always."""
    ort = import_onnxruntime()
    if device_type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModel:
    """The two graphs of an export in ONNX Runtime sessions: ``features`` for batches of crops, ``temporal`` for
    sequences of features with their RNN state. Sessions are thread-safe; one instance may serve several scanners.
    """

    def __init__(self, path: str | Path, device_type: str = "cpu", threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"ONNX model not found: {path}")
        self.threads = threads or available_cores()
        self.providers = choose_providers(device_type)
        self.encoder_session = _session(path, self.providers, self.threads)
        self.info = OnnxModelInfo.from_metadata(path, dict(self.encoder_session.get_modelmeta().custom_metadata_map))
        self.path = path
        head = path.with_name(self.info.head_file)
        if not head.is_file():
            raise OnnxModelError(f"{self.path} needs its head graph {head.name} beside it (both files are written "
                                 "by `fakescope export`; copy them together)")
        if sha256_file(head) != self.info.head_sha256:
            raise OnnxModelError(f"{head} is not the head graph exported with {self.path.name} (its sha256 differs): "
                                 "copy the pair of files of one export together")
        self.head_session = _session(head, self.providers, self.threads)
        self.sha256 = sha256_file(self.path)
        config = self.info.config
        self.is_lstm = config.rnn == "lstm"
        directions = 2 if config.bidirectional else 1
        self.state_rows = config.rnn_layers * directions
        self.hidden_size = config.hidden_size

    @property
    def config(self) -> ModelConfig:
        return self.info.config

    @property
    def precision(self) -> str:
        return self.info.precision

    def features(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB crops -> (N, C) float32 features."""
        return self.encoder_session.run([ENCODER_OUTPUT], {ENCODER_INPUT: np.ascontiguousarray(crops)})[0]

    def zero_state(self, tracks: int) -> tuple[np.ndarray, ...]:
        """A fresh RNN state for ``tracks`` sequences: (h0,) for a GRU, (h0, c0) for an LSTM."""
        zeros = np.zeros((self.state_rows, tracks, self.hidden_size), dtype=np.float32)
        return (zeros, zeros.copy()) if self.is_lstm else (zeros,)

    def temporal(self, features: np.ndarray, state: tuple[np.ndarray, ...] | None = None
                 ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """(B, T, C) features of B tracks -> ((B, T) p_fake, the RNN state after the last frame)."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        state = state if state is not None else self.zero_state(features.shape[0])
        count = 2 if self.is_lstm else 1
        feed = {HEAD_INPUTS[0]: features, **{name: value for name, value in zip(HEAD_INPUTS[1:1 + count], state)}}
        outputs = self.head_session.run(list(HEAD_OUTPUTS[: 1 + count]), feed)
        return outputs[0], tuple(outputs[1:])

    def describe(self) -> dict[str, Any]:
        """The export's record for a scan summary."""
        record: dict[str, Any] = {"path": str(self.path), "sha256": self.sha256, "precision": self.precision,
                                  "providers": self.providers, "threads": self.threads}
        if self.info.quantisation:
            record["quantisation"] = self.info.quantisation
        return record
