"""``Detector``: the Python API for scanning videos and images (what ``fakescope scan`` runs)."""
from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..faces import create_face_detector
from ..models import CheckpointMeta, TemporalDeepfakeDetector, load_checkpoint
from ..names import printable
from ..weights import ShippedWeightsError, default_weights_path, verify_default_weights
from ..video import MediaError, MediaInfo, MediaReader, MediaSource, as_source, source_name
from .outputs import write_json, write_predictions_csv
from .pipeline import FrameAnalyzer, ScanOptions, StageTimer
from .progress import progress as progress_display
from .results import ScanResult, aggregate, label_for, summarise_tracks

if TYPE_CHECKING:
    from ..visualization.render import FrameRenderer, RenderOutput

log = logging.getLogger(__name__)

class WeightsError(RuntimeError):
    """No usable trained weights: said plainly instead of printing verdicts of an untrained model."""


class OutputError(RuntimeError):
    """An output file of an input could not be written (a full disk, a removed or read-only folder)."""


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError with an errno behind ``error`` (itself, or what caused it), if any: encoders and writers wrap
    the file system's refusal in their own exceptions."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current
        current = current.__cause__ or current.__context__
    return None


def describe_os_error(error: OSError) -> str:
    """``No space left on device`` (ENOSPC), ``No such file or directory`` ... without the file name."""
    return error.strerror or errno.errorcode.get(error.errno or 0, str(error))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return torch.device(device)


class Detector:
    """A loaded deepfake detector: ``Detector.load(weights).scan("video.mp4", out_dir="results")``."""

    def __init__(
        self,
        model: TemporalDeepfakeDetector,
        meta: CheckpointMeta,
        options: ScanOptions | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        # The crops arrive channels-last (CropBatcher); matching weights let oneDNN/cuDNN skip layout conversions.
        self.model.backbone.to(memory_format=torch.channels_last)
        self.model.convs.to(memory_format=torch.channels_last)
        self.meta = meta
        self.options = options or ScanOptions()
        self.face_detector = create_face_detector(
            "yunet",
            score_threshold=self.options.detector_score,
            max_side=self.options.detector_max_side,
            min_face_size=self.options.min_face_size,
        )

    @classmethod
    def load(
        cls,
        weights: str | Path | None = None,
        device: str | torch.device = "auto",
        allow_untrained: bool = False,
        options: ScanOptions | None = None,
        **option_overrides: Any,
    ) -> "Detector":
        """Load a checkpoint (default: the weights shipped with the package).

        Raises WeightsError when no trained weights are available, or when the checkpoint is untrained and
        ``allow_untrained`` is false: verdicts of an untrained model mean nothing.
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
        model, meta = load_checkpoint(weights)
        if not meta.trained and not allow_untrained:
            raise WeightsError(
                f"{weights} holds an untrained model (its head was never trained): its verdicts would be "
                "meaningless. Use trained weights, or pass --allow-untrained to exercise the pipeline anyway."
            )
        if options is None:
            options = ScanOptions(**option_overrides)
        elif option_overrides:
            raise TypeError("pass either options or option overrides, not both")
        return cls(model, meta, options, device)

    @property
    def threshold(self) -> float:
        return self.options.threshold if self.options.threshold is not None else self.meta.threshold

    def model_info(self) -> dict[str, Any]:
        """The model's description in every summary: one shared dictionary while it stays the same (a run over
        10,000 images keeps 10,000 results for its report, not 10,000 copies of the model's config)."""
        info = self._model_info()
        if getattr(self, "_model_info_cache", None) != info:
            self._model_info_cache = info
        return self._model_info_cache

    def _model_info(self) -> dict[str, Any]:
        return {
            "name": self.model.config.name,
            "weights": self.meta.path,
            "sha256": self.meta.sha256,
            "trained": self.meta.trained,
            "config": self.model.config.to_dict(),
            "device": str(self.device),
            "precision": self.options.precision,
        }

    def scan(
        self,
        path: str | Path,
        out_dir: str | Path | None = None,
        progress: bool = False,
        label: str | None = None,
    ) -> ScanResult:
        """Scan one video, image or http(s)/rtsp URL; with ``out_dir``, also write its files there. Never raises for
        bad input or outputs that cannot be written: problems come back as ``verdict == "error"`` with a
        ``reason``. ``label`` names the input in progress displays (default: its file name)."""
        source = as_source(path)
        result = ScanResult(
            input=str(source),
            verdict="error",
            threshold=self.threshold,
            aggregation=self.options.aggregation,
            selection=self.options.selection.describe(),
            model=self.model_info(),
        )
        out = Path(out_dir) if out_dir is not None else None
        self._label = printable(label if label is not None else source_name(source))
        try:
            if out is not None:
                result.outputs["dir"] = str(out)
                with _writing(out):
                    out.mkdir(parents=True, exist_ok=True)
            self._scan_into(result, source, out, progress)
        except (MediaError, OutputError) as error:
            result.verdict, result.reason = "error", str(error)
        except Exception as error:  # keep scanning other inputs; the reason reaches the report
            log.debug("scan of %s failed", source, exc_info=True)
            result.verdict, result.reason = "error", f"internal error: {type(error).__name__}: {error}"
        if out is not None:
            try:
                with _writing(out):
                    result.outputs["summary"] = str(write_json(result.to_summary(), out / "summary.json"))
            except OutputError as error:
                result.verdict = "error"
                result.reason = f"{result.reason}; {error}" if result.reason else str(error)
        return result

    def _scan_into(self, result: ScanResult, path: MediaSource, out: Path | None, progress: bool) -> None:
        timer = StageTimer()
        started = time.perf_counter()
        analyzer = FrameAnalyzer(self.model, self.face_detector, self.options, self.device)
        with MediaReader(path, selection=self.options.selection, decode_all=False) as reader:
            info = reader.info
            result.kind = info.kind
            result.media = {
                "width": info.width, "height": info.height, "fps": round(info.fps, 4),
                "frame_count": info.frame_count, "duration_s": round(info.duration_s, 3),
            }
            expected = _expected_selected(self.options.selection, info)
            bar = progress_display(expected, f"{self._label}: analyse", "frame", progress)
            result.frames = analyzer.analyse(reader, timer, on_frame=lambda: bar.update(1))
            bar.close()
        # After the reader has closed: its decoding thread has finished, so the counts and warnings are final.
        result.frames_decoded = reader.frames_decoded
        decode_error = reader.decode_error
        result.warnings.extend(reader.warnings)
        if reader.frames_lost:
            result.media["frames_lost"] = reader.frames_lost
        analysis_seconds = time.perf_counter() - started

        result.frames_analysed = len(result.frames)
        result.frames_with_faces = sum(1 for frame in result.frames if frame.faces)
        result.tracks = summarise_tracks(result.frames, result.threshold)
        result.p_fake = aggregate(result.frames, result.tracks, self.options.aggregation)
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

        if out is not None:
            with _writing(out):
                self._write_outputs(result, path, info, out, timer, progress)
        total_seconds = time.perf_counter() - started
        result.timing = {
            "seconds": round(total_seconds, 3),
            "analysis_seconds": round(analysis_seconds, 3),
            "analysed_fps": round(result.frames_analysed / analysis_seconds, 3) if analysis_seconds > 0 else None,
            "end_to_end_fps": round(result.frames_analysed / total_seconds, 3) if total_seconds > 0 else None,
            "stages": timer.as_dict(),
        }

    def _write_outputs(
        self, result: ScanResult, path: MediaSource, info: MediaInfo, out: Path, timer: StageTimer, progress: bool
    ) -> None:
        from ..visualization.plots import plot_trend
        from ..visualization.render import FrameRenderer, verdict_banner

        with timer.stage("write"):
            result.outputs["predictions"] = str(write_predictions_csv(result, out / "predictions.csv"))
            if self.options.plot and info.kind == "video" and result.frames:
                title = f"{printable(source_name(path))}: {result.verdict}"
                if result.p_fake is not None:
                    title += f" (p_fake {result.p_fake:.2f}, {self.options.aggregation})"
                result.outputs["trend"] = str(plot_trend(result.frames, result.threshold, out / "trend.png", title))
        heatmaps = None
        if self.options.heatmap and result.frames_with_faces:
            heatmaps = self._compute_heatmaps(result, path, timer, progress)
        rendered: RenderOutput | None = None
        # The report's thumbnails come from this pass; without videos to write it is skipped to stay cheap.
        if (self.options.annotate or heatmaps is not None) and result.frames:
            renderer = FrameRenderer(
                result.frames, result.threshold, verdict_banner(result.verdict, result.p_fake), self.options.margin,
                heatmaps=heatmaps, heatmap_dir=out / "heatmaps" if heatmaps is not None else None,
            )
            with timer.stage("write"):
                rendered = self._render(result, path, info, out, renderer, heatmaps is not None, progress)
            if rendered.heatmap_pngs:
                result.outputs["heatmap_frames"] = [str(png) for png in rendered.heatmap_pngs]
        if self.options.report:
            from ..visualization.report_html import write_input_report

            with timer.stage("write"):
                highlights = rendered.highlights if rendered is not None else []
                result.outputs["report"] = str(write_input_report(result, out / "report.html", highlights))

    def _compute_heatmaps(
        self, result: ScanResult, path: MediaSource, timer: StageTimer, progress: bool
    ) -> dict[tuple[int, int], np.ndarray]:
        from ..visualization.gradcam import compute_heatmaps

        bar = progress_display(result.frames_with_faces, f"{self._label}: heatmaps", "frame", progress)
        with timer.stage("heatmap"):
            heatmaps = compute_heatmaps(
                self.model, path, result.frames, self.options.selection, self.options.margin,
                self.options.window or self.model.config.window, self.device, on_frame=lambda: bar.update(1),
                method=self.options.heatmap_method,
            )
        bar.close()
        return heatmaps

    def _render(
        self, result: ScanResult, path: MediaSource, info: MediaInfo, out: Path, renderer: FrameRenderer,
        with_heatmap: bool, progress: bool,
    ) -> RenderOutput:
        from ..visualization.render import render_still, render_video

        suffix = ".jpg" if info.kind == "image" else ".mp4"
        annotated_path = out / f"annotated{suffix}" if self.options.annotate else None
        heatmap_path = out / f"heatmap{suffix}" if with_heatmap else None
        if info.kind == "image":
            with MediaReader(path) as reader:
                image = next(iter(reader)).image
            rendered = render_still(image, renderer, result.frames[0].frame_index, annotated_path, heatmap_path)
        else:
            total = result.frames_decoded or info.frame_count or None
            bar = progress_display(total, f"{self._label}: render", "frame", progress)
            rendered = render_video(path, renderer, annotated_path, heatmap_path, on_frame=lambda: bar.update(1))
            bar.close()
            result.frames_rendered = rendered.frames_written
        if annotated_path is not None:
            result.outputs["annotated"] = str(annotated_path)
        if heatmap_path is not None:
            result.outputs["heatmap"] = str(heatmap_path)
        return rendered


class _writing:
    """Turns a failure to write into ``out`` (ENOSPC, a removed or read-only folder) into an OutputError with the
    file system's reason; other errors pass through."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if error is None or isinstance(error, (MediaError, OutputError)) or not isinstance(error, Exception):
            return
        os_error = os_error_in(error)
        if os_error is None:
            return
        raise OutputError(f"could not write the outputs to {printable(str(self.out))}: "
                          f"{describe_os_error(os_error)}") from error


def _expected_selected(selection, info: MediaInfo) -> int | None:
    """How many frames the selection should analyse (for the progress bar), or None when unknown."""
    if info.kind == "image":
        return 1
    if not info.frame_count:
        return None
    select = selection.selector(info)
    fps = info.fps or 25.0
    return sum(1 for index in range(info.frame_count) if select(index, index / fps))
