"""Exporting a loaded ``Scanner``'s model to ONNX (``fakescope export``): face crops for int8 calibration, found
by the scanner's own face detector and cut by its own crop, and the check that the export scores as PyTorch does.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models.onnx_export import ExportResult, Int8Settings, export_onnx
from ..models.onnx_model import OnnxModel
from ..video import FrameSelection, MediaError, MediaReader, iter_media
from .encoder import FaceEncoder, OnnxFaceEncoder
from .scanner import Scanner

SHARED_ENV = "FAKESCOPE_SHARED"
FFPP_MINI = Path("data") / "ffpp-mini"


def default_calibration_media() -> Path | None:
    """The FaceForensics++ sample of a fakescope checkout, when present: ``$FAKESCOPE_SHARED/data/ffpp-mini``, else
    ``../shared/data/ffpp-mini`` from the current directory."""
    candidates = [Path(os.environ[SHARED_ENV]) / FFPP_MINI] if os.environ.get(SHARED_ENV) else []
    candidates.append(Path("..") / "shared" / FFPP_MINI)
    return next((path for path in candidates if path.is_dir()), None)


@dataclass
class FaceCrops:
    """Face crops of media, one sequence per input in frame order (its largest face in each frame)."""

    sequences: list[list[np.ndarray]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def crops(self) -> list[np.ndarray]:
        return [crop for sequence in self.sequences for crop in sequence]

    def describe(self, where: Sequence[str | Path]) -> str:
        return (f"{len(self.crops)} face crops from {len(self.inputs)} inputs under "
                f"{', '.join(str(path) for path in where)}")


def collect_face_crops(scanner: Scanner, paths: Sequence[str | Path], frames_per_input: int = 8,
                       max_inputs: int | None = None) -> FaceCrops:
    """The largest face of ``frames_per_input`` evenly spaced frames of each video or image under ``paths``,
    detected by ``scanner.face_detector`` and cropped by ``scanner.encoder`` exactly as a scan does."""
    found = FaceCrops()
    selection = FrameSelection("count", frames_per_input)
    for item in iter_media(paths):
        if item.error or item.skipped:
            continue
        if max_inputs is not None and len(found.inputs) >= max_inputs:
            break
        sequence = []
        try:
            with MediaReader(item.path, selection=selection, decode_all=False) as reader:
                for frame in reader:
                    faces = scanner.face_detector.detect(frame.image)
                    if faces:
                        largest = max(faces, key=lambda face: (face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))
                        sequence.append(scanner.encoder.crop(frame.image, largest.box))
        except MediaError:
            found.unreadable.append(str(item.path))
            continue
        if sequence:
            found.sequences.append(sequence)
            found.inputs.append(str(item.path))
    return found


def export_scanner(scanner: Scanner, out: str | Path, int8: bool = False, calibration: FaceCrops | None = None,
                   calibration_source: str = "", settings: Int8Settings | None = None) -> ExportResult:
    """Export ``scanner``'s model (its weights' threshold and sha256 recorded) to ``out`` and its head file;
    ``int8`` quantises the encoder with ``calibration``'s crops."""
    crops = calibration.crops if calibration is not None else []
    return export_onnx(scanner.model, scanner.meta, out, int8=int8, calibration=crops, settings=settings,
                       calibration_source=calibration_source)


@dataclass
class Agreement:
    """How closely an ONNX export scores like the PyTorch model in fp32, over some face crops."""

    crops: int
    max_feature_diff: float
    max_p_fake_diff: float
    mean_p_fake_diff: float


def compare_with_torch(scanner: Scanner, onnx_model: OnnxModel | str | Path, sequences: Sequence[Sequence[np.ndarray]],
                       batch_size: int = 16) -> Agreement:
    """Scores of ``onnx_model`` against ``scanner``'s PyTorch model in fp32 on each sequence of crops, as a scan
    computes them (features in batches, p_fake per track in windows of the scanner's window)."""
    if not isinstance(onnx_model, OnnxModel):
        onnx_model = OnnxModel(onnx_model, scanner.device.type)
    reference = FaceEncoder(scanner.model, scanner.device, scanner.faces.margin, "fp32")
    exported = OnnxFaceEncoder(scanner.model, scanner.device, scanner.faces.margin, "auto", onnx_model)
    feature_diff, p_diffs = 0.0, []
    for sequence in sequences:
        if not sequence:
            continue
        expected = torch.cat([reference.encode(sequence[i : i + batch_size]).cpu()
                              for i in range(0, len(sequence), batch_size)])
        got = torch.cat([exported.encode(sequence[i : i + batch_size]) for i in range(0, len(sequence), batch_size)])
        feature_diff = max(feature_diff, float((expected - got).abs().max()))
        p_expected = reference.predict_track(expected.to(scanner.device), scanner.window).cpu()
        p_got = exported.predict_track(got, scanner.window)
        p_diffs.append((p_expected - p_got).abs())
    diffs = torch.cat(p_diffs) if p_diffs else torch.zeros(1)
    return Agreement(int(sum(len(sequence) for sequence in sequences)), feature_diff, float(diffs.max()),
                     float(diffs.mean()))
