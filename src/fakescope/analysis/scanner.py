"""``Scanner``: a loaded model with its face detector, scanning videos and images (what ``fakescope scan``,
``live`` and ``evaluate`` run). It analyses; writing files is ``fakescope.outputs``' job."""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..faces import create_face_detector
from ..models import CheckpointMeta, LazyModel, ModelConfig, TemporalDeepfakeModel, open_checkpoint
from ..models.onnx_model import OnnxModel, check_matches
from ..names import printable
from ..options import AnalysisOptions, FaceOptions, options_record, split_values
from ..progress import progress as progress_display
from ..results import ScanFailure, ScanResult, aggregate, label_for, summarise_tracks
from ..timing import StageTimer
from ..video import FrameSelection, MediaError, MediaInfo, MediaReader, MediaSource, as_source, source_name
from ..weights import ShippedWeightsError, default_weights_path, verify_default_weights
from .encoder import FaceEncoder, OnnxFaceEncoder
from .scan_loop import FrameAnalyzer

log = logging.getLogger(__name__)

AnalysedCallback = Callable[[ScanResult, MediaSource, MediaInfo, StageTimer], None]
FrameCallback = Callable[[int, "int | None"], None]
"""Called by ``Scanner.scan`` after each analysed frame with (frames analysed so far, frames expected or None)."""
"""Called by ``Scanner.scan`` once an input is analysed and its verdict set (``fakescope.outputs`` writes files
there); the stages it times count in the result's timings."""


class WeightsError(RuntimeError):
    """No usable trained weights: said plainly instead of printing verdicts of an untrained model."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return torch.device(device)


def open_trained_model(weights: str | Path | None, allow_untrained: bool) -> tuple[LazyModel, CheckpointMeta]:
    """The model of ``weights`` (default: the shipped weights, their hash checked), built on first use, and its
    metadata. Everything but building the model is checked now.

    Raises WeightsError when no trained weights are available, or when the checkpoint is untrained and
    ``allow_untrained`` is false: verdicts of an untrained model mean nothing. CheckpointError when ``weights`` is
    no fakescope checkpoint (and, once built, when its tensors do not fit its architecture).
    """
    if weights is None:
        weights = default_weights_path()
        if weights is None:
            raise WeightsError(
                "this fakescope build ships no trained weights yet, so it cannot give a verdict. "
                "Pass a trained checkpoint with --weights PATH (train one with `fakescope train`)."
            )
        try:
            weights = verify_default_weights(weights.parent)
        except ShippedWeightsError as error:
            raise WeightsError(str(error)) from error
    model, meta = open_checkpoint(weights)
    if not meta.trained and not allow_untrained:
        raise WeightsError(
            f"{weights} holds an untrained model (its head was never trained): its verdicts would be "
            "meaningless. Use trained weights, or pass --allow-untrained to exercise the pipeline anyway."
        )
    return model, meta


def load_onnx_model(path: str | Path, config: ModelConfig, meta: CheckpointMeta, device: torch.device) -> OnnxModel:
    """The ONNX export at ``path``, checked to come from the architecture ``config`` and the weights of ``meta``
    (OnnxModelError otherwise); ONNX Runtime uses as many threads as PyTorch (the cores given to the process)."""
    onnx_model = OnnxModel(path, device.type, threads=torch.get_num_threads())
    check_matches(onnx_model.info, config, meta.sha256, meta.path or "the checkpoint in use")
    return onnx_model


def _prepared(lazy_model: LazyModel, device: torch.device) -> TemporalDeepfakeModel:
    """The model of ``lazy_model``, built, on ``device`` in eval mode, its convolutions' weights channels-last."""
    model = lazy_model.get().to(device).eval()
    # The crops arrive channels-last (FaceEncoder); matching weights let oneDNN/cuDNN skip layout conversions.
    model.backbone.to(memory_format=torch.channels_last)
    model.convs.to(memory_format=torch.channels_last)
    return model


class Scanner:
    """A loaded deepfake model and face detector: ``Scanner.load(weights).scan("video.mp4")``.

    ``fakescope.outputs.scan_to_folder(scanner, "video.mp4", "results")`` also writes the files. With
    ``runtime="onnx"`` the CNN and temporal head run in ONNX Runtime on ``onnx_model``'s file (loaded here unless an
    ``OnnxModel`` of that file is given, to share its sessions), an export of the same weights.

    ``model``: the PyTorch model, or a ``LazyModel`` of it. The torch runtime builds it at once; the ONNX runtime
    only when something asks for ``model`` (the heatmaps, an export, a copy for live), so a scan on ONNX Runtime
    never builds it (nor imports timm). ``config`` is the model's config either way.
    """

    def __init__(
        self,
        model: TemporalDeepfakeModel | LazyModel,
        meta: CheckpointMeta,
        faces: FaceOptions | None = None,
        analysis: AnalysisOptions | None = None,
        device: str | torch.device = "auto",
        onnx_model: OnnxModel | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if not isinstance(model, LazyModel):
            model = LazyModel.of(model)
        self.config: ModelConfig = model.config
        self._lazy_model = LazyModel(model.config, partial(_prepared, model, self.device))
        if model.built:
            self.build_model()  # a model given built is moved to the device now, as it always was
        self.meta = meta
        self.faces = faces or FaceOptions()
        self.analysis = analysis or AnalysisOptions()
        self.onnx_model = onnx_model
        self.encoder = self._encoder_for(self.analysis)
        self.face_detector = create_face_detector(
            "yunet",
            score_threshold=self.faces.detect_score,
            max_side=self.faces.detect_size,
            min_face_size=self.faces.min_face,
        )

    @classmethod
    def load(
        cls,
        weights: str | Path | None = None,
        device: str | torch.device = "auto",
        allow_untrained: bool = False,
        faces: FaceOptions | None = None,
        analysis: AnalysisOptions | None = None,
        **option_values: Any,
    ) -> Scanner:
        """Load a checkpoint (default: the weights shipped with the package). Options come as ``faces`` and
        ``analysis``, or as their fields by name (``Scanner.load(window=8, min_face=40)``), not both.

        Raises WeightsError when no trained weights are available, or when the checkpoint is untrained and
        ``allow_untrained`` is false; CheckpointError when the weights are no (buildable) fakescope checkpoint.
        """
        if option_values:
            if faces is not None or analysis is not None:
                raise TypeError("pass either option objects or option values by name, not both")
            face_values, analysis_values = split_values(option_values, FaceOptions, AnalysisOptions)
            faces, analysis = FaceOptions(**face_values), AnalysisOptions(**analysis_values)
        model, meta = open_trained_model(weights, allow_untrained)
        return cls(model, meta, faces, analysis, device)

    @property
    def model(self) -> TemporalDeepfakeModel:
        """The PyTorch model, built now if it was not yet (shared by the ``with_analysis`` copies)."""
        return self._lazy_model.get()

    @property
    def model_built(self) -> bool:
        """Whether the PyTorch model has been built (a scan on ONNX Runtime without heatmaps never builds it)."""
        return self._lazy_model.built

    def build_model(self) -> None:
        """Build the PyTorch model now unless it is built: called at load time when heatmaps will need it, so that
        a checkpoint that cannot be built is refused before the first input instead of failing each one."""
        self._lazy_model.get()

    @property
    def window(self) -> int:
        """Frames per RNN window: the analysis option, else the checkpoint's."""
        return self.analysis.window or self.config.window

    def with_analysis(self, analysis: AnalysisOptions) -> Scanner:
        """This scanner with other analysis options (frame selection, precision, threshold ...), sharing its model
        and face detector: a server loads the model once and scans each request with that request's options."""
        derived = copy.copy(self)
        derived.analysis = analysis
        derived.encoder = derived._encoder_for(analysis)
        derived._model_info_cache = None
        return derived

    def _encoder_for(self, analysis: AnalysisOptions) -> FaceEncoder:
        """The encoder of ``analysis``'s runtime and precision (loading its ONNX file unless already loaded);
        ValueError or OnnxModelError for options that do not fit together."""
        if analysis.runtime == "torch":
            if analysis.onnx_model is not None:
                raise ValueError("--onnx-model is for --runtime onnx: add --runtime onnx to run it")
            return FaceEncoder(self.model, self.device, self.faces.margin, analysis.precision)
        if analysis.onnx_model is None:
            raise ValueError("--runtime onnx needs --onnx-model FILE: write one with `fakescope export --format onnx "
                             "--out FILE` (add --int8 for the faster int8 model)")
        loaded = self.onnx_model
        if loaded is None or loaded.path.resolve() != Path(analysis.onnx_model).resolve():
            loaded = self.onnx_model = load_onnx_model(analysis.onnx_model, self.config, self.meta, self.device)
        return OnnxFaceEncoder(self._lazy_model, self.device, self.faces.margin, analysis.precision, loaded)

    @property
    def threshold(self) -> float:
        return self.analysis.threshold if self.analysis.threshold is not None else self.meta.threshold

    @property
    def selection(self) -> FrameSelection:
        return self.analysis.selection

    def model_info(self) -> dict[str, Any]:
        """The model's description in every summary: one shared dictionary while it stays the same (a run over
        10,000 images keeps 10,000 results for its report, not 10,000 copies of the model's config)."""
        info = self._model_info()
        if getattr(self, "_model_info_cache", None) != info:
            self._model_info_cache = info
        return self._model_info_cache

    def _model_info(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "weights": self.meta.path,
            "sha256": self.meta.sha256,
            "trained": self.meta.trained,
            "config": self.config.to_dict(),
            "device": str(self.device),
            **self.encoder.describe(),
        }

    def new_result(self, source: MediaSource) -> ScanResult:
        """The result of ``source`` before it is scanned (an error until the scan says otherwise)."""
        return ScanResult(
            input=str(source),
            verdict="error",
            threshold=self.threshold,
            aggregation=self.analysis.aggregation,
            selection=self.analysis.selection.describe(),
            model=self.model_info(),
            options={"faces": options_record(self.faces), "analysis": options_record(self.analysis)},
        )

    def scan(
        self,
        path: str | Path,
        progress: bool = False,
        label: str | None = None,
        on_analysed: AnalysedCallback | None = None,
        on_frame: FrameCallback | None = None,
    ) -> ScanResult:
        """Scan one video, image or http(s)/rtsp URL. Never raises for bad input: problems come back as
        ``verdict == "error"`` with a ``reason`` (a ScanFailure raised by ``on_analysed`` too). ``label`` names the
        input in progress displays (default: its file name); ``on_frame`` follows the analysis frame by frame."""
        source = as_source(path)
        result = self.new_result(source)
        try:
            shown = printable(label if label is not None else source_name(source))
            self._scan_into(result, source, progress, shown, on_analysed, on_frame)
        except (MediaError, ScanFailure) as error:
            result.verdict, result.reason = "error", str(error)
        except Exception as error:  # keep scanning other inputs; the reason reaches the report
            log.debug("scan of %s failed", source, exc_info=True)
            result.verdict, result.reason = "error", f"internal error: {type(error).__name__}: {error}"
        return result

    def _scan_into(
        self, result: ScanResult, source: MediaSource, progress: bool, label: str,
        on_analysed: AnalysedCallback | None, on_frame: FrameCallback | None = None,
    ) -> None:
        timer = StageTimer()
        started = time.perf_counter()
        info = self._analyse(result, source, timer, progress, label, on_frame)
        analysis_seconds = time.perf_counter() - started
        self._judge(result)
        if on_analysed is not None:
            on_analysed(result, source, info, timer)
        total_seconds = time.perf_counter() - started
        result.timing = {
            "seconds": round(total_seconds, 3),
            "analysis_seconds": round(analysis_seconds, 3),
            "analysed_fps": round(result.frames_analysed / analysis_seconds, 3) if analysis_seconds > 0 else None,
            "end_to_end_fps": round(result.frames_analysed / total_seconds, 3) if total_seconds > 0 else None,
            "stages": timer.as_dict(),
            "counts": dict(timer.counts),
        }

    def _analyse(self, result: ScanResult, source: MediaSource, timer: StageTimer, progress: bool,
                 label: str, on_frame: FrameCallback | None = None) -> MediaInfo:
        """Decode, detect, track and score every selected frame into ``result``; returns the media's info."""
        analyzer = FrameAnalyzer(self.encoder, self.face_detector, self.window, self.analysis.batch_size,
                                 self.faces.detect_every)
        with MediaReader(source, selection=self.analysis.selection, decode_all=False) as reader:
            info = reader.info
            result.kind = info.kind
            result.media = {
                "width": info.width, "height": info.height, "fps": round(info.fps, 4),
                "frame_count": info.frame_count, "duration_s": round(info.duration_s, 3),
            }
            expected = _expected_selected(self.analysis.selection, info)
            bar = progress_display(expected, f"{label}: analyse", "frame", progress)
            done = 0

            def frame_analysed() -> None:
                nonlocal done
                done += 1
                bar.update(1)
                if on_frame is not None:
                    on_frame(done, expected)

            result.frames = analyzer.analyse(reader, timer, on_frame=frame_analysed)
            bar.close()
        # After the reader has closed: its decoding thread has finished, so the counts and warnings are final.
        result.frames_decoded = reader.frames_decoded
        if reader.frames_skipped:
            timer.counts["frames_never_decoded"] += reader.frames_skipped
        result.warnings.extend(reader.warnings)
        if reader.frames_lost:
            result.media["frames_lost"] = reader.frames_lost
        if reader.decode_error:
            result.verdict, result.reason = "error", reader.decode_error
        return info

    def _judge(self, result: ScanResult) -> None:
        """Track scores, the input's score and its verdict, and the warnings that go with them."""
        decode_error = result.reason if result.verdict == "error" else None
        result.frames_analysed = len(result.frames)
        result.frames_with_faces = sum(1 for frame in result.frames if frame.faces)
        result.tracks = summarise_tracks(result.frames, result.threshold)
        result.p_fake = aggregate(result.frames, result.tracks, self.analysis.aggregation)
        if decode_error:
            result.verdict, result.reason = "error", decode_error
        elif result.frames_analysed == 0:
            result.verdict, result.reason = "error", "no frame could be decoded"
        elif result.p_fake is None:
            result.verdict = "no_face"
            result.reason = f"no face found in {result.frames_analysed} analysed frames"
        else:
            result.verdict = label_for(result.p_fake, result.threshold)
        if not self.meta.trained:
            result.warnings.append("UNTRAINED MODEL: these scores come from untrained weights and mean nothing")
        if result.frames_analysed and result.face_ratio < 0.5 and result.frames_with_faces:
            result.warnings.append(
                f"faces were found on only {result.frames_with_faces} of {result.frames_analysed} analysed frames"
            )


def _expected_selected(selection: FrameSelection, info: MediaInfo) -> int | None:
    """How many frames the selection should analyse (for the progress bar), or None when unknown."""
    if info.kind == "image":
        return 1
    if not info.frame_count:
        return None
    select = selection.selector(info)
    fps = info.fps or 25.0
    return sum(1 for index in range(info.frame_count) if select(index, index / fps))
