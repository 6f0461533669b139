"""Writing every file of a scanned input, driven by its result: predictions.csv, trend.png, the heatmaps, the
annotated video, report.html and summary.json; and ``scan_to_folder``, a scan with all of them."""
from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.heatmaps import compute_heatmaps
from ..analysis.scanner import FrameCallback, Scanner
from ..atomic import AtomicFolder
from ..names import printable
from ..options import OutputOptions, options_record
from ..progress import progress as progress_display
from ..results import ScanFailure, ScanResult
from ..timing import StageTimer
from ..video import MediaError, MediaInfo, MediaReader, MediaSource, as_source, source_name
from .html_pages import write_input_page
from .plots import plot_trend
from .render import FrameRenderer, RenderOutput, render_still, render_video, verdict_banner
from .tables import write_json, write_predictions_csv


class OutputError(ScanFailure):
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


class writing_into:
    """Turns a failure to write into ``out`` (ENOSPC, a removed or read-only folder) into an OutputError with the
    file system's reason; other errors pass through."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if error is None or isinstance(error, (MediaError, ScanFailure)) or not isinstance(error, Exception):
            return
        os_error = os_error_in(error)
        if os_error is None:
            return
        raise OutputError(f"could not write the outputs to {printable(str(self.out))}: "
                          f"{describe_os_error(os_error)}") from error


class OutputWriter:
    """Writes the files of one scanned input into ``out``: call it with the result once analysed (it is the
    ``on_analysed`` of ``Scanner.scan``)."""

    def __init__(self, scanner: Scanner, out: Path, options: OutputOptions, progress: bool, label: str,
                 shown_dir: Path | None = None) -> None:
        self.scanner = scanner
        self.out = out
        self.shown_dir = shown_dir or out  # the folder named in error messages (where the files end up)
        self.options = options
        self.progress = progress
        self.label = label

    def __call__(self, result: ScanResult, source: MediaSource, info: MediaInfo, timer: StageTimer) -> None:
        with writing_into(self.shown_dir):
            self._write_tables_and_trend(result, source, info, timer)
            heatmaps = None
            if self.options.heatmap and result.frames_with_faces:
                heatmaps = self._compute_heatmaps(result, source, timer)
            rendered: RenderOutput | None = None
            # The report's thumbnails come from this pass; without videos to write it is skipped to stay cheap.
            if (self.options.annotate or heatmaps is not None) and result.frames:
                with timer.stage("write"):
                    rendered = self._render(result, source, info, heatmaps)
                if rendered.heatmap_pngs:
                    result.outputs["heatmap_frames"] = [str(png) for png in rendered.heatmap_pngs]
            if self.options.report:
                with timer.stage("write"):
                    highlights = rendered.highlights if rendered is not None else []
                    result.outputs["report"] = str(write_input_page(result, self.out / "report.html", highlights))

    def _write_tables_and_trend(self, result: ScanResult, source: MediaSource, info: MediaInfo,
                                timer: StageTimer) -> None:
        with timer.stage("write"):
            result.outputs["predictions"] = str(write_predictions_csv(result, self.out / "predictions.csv"))
            if self.options.plot and info.kind == "video" and result.frames:
                title = f"{printable(source_name(source))}: {result.verdict}"
                if result.p_fake is not None:
                    title += f" (p_fake {result.p_fake:.2f}, {result.aggregation})"
                result.outputs["trend"] = str(plot_trend(result.frames, result.threshold, self.out / "trend.png",
                                                         title))

    def _compute_heatmaps(self, result: ScanResult, source: MediaSource,
                          timer: StageTimer) -> dict[tuple[int, int], np.ndarray]:
        bar = progress_display(result.frames_with_faces, f"{self.label}: heatmaps", "frame", self.progress)
        with timer.stage("heatmap"):
            heatmaps = compute_heatmaps(
                self.scanner.encoder, source, result.frames, self.scanner.selection, self.scanner.window,
                on_frame=lambda: bar.update(1), method=self.options.heatmap_method,
            )
        bar.close()
        return heatmaps

    def _render(self, result: ScanResult, source: MediaSource, info: MediaInfo,
                heatmaps: dict[tuple[int, int], np.ndarray] | None) -> RenderOutput:
        """annotated.mp4 / heatmap.mp4 (.jpg for an image) and the heatmap PNGs, from one decode of the input."""
        renderer = FrameRenderer(
            result.frames, result.threshold, verdict_banner(result.verdict, result.p_fake), self.scanner.faces.margin,
            heatmaps=heatmaps, heatmap_dir=self.out / "heatmaps" if heatmaps is not None else None,
        )
        suffix = ".jpg" if info.kind == "image" else ".mp4"
        annotated_path = self.out / f"annotated{suffix}" if self.options.annotate else None
        heatmap_path = self.out / f"heatmap{suffix}" if heatmaps is not None else None
        if info.kind == "image":
            with MediaReader(source) as reader:
                image = next(iter(reader)).image
            rendered = render_still(image, renderer, result.frames[0].frame_index, annotated_path, heatmap_path)
        else:
            total = result.frames_decoded or info.frame_count or None
            bar = progress_display(total, f"{self.label}: render", "frame", self.progress)
            rendered = render_video(source, renderer, annotated_path, heatmap_path, on_frame=lambda: bar.update(1))
            bar.close()
            result.frames_rendered = rendered.frames_written
        if annotated_path is not None:
            result.outputs["annotated"] = str(annotated_path)
        if heatmap_path is not None:
            result.outputs["heatmap"] = str(heatmap_path)
        return rendered


def scan_to_folder(
    scanner: Scanner,
    path: str | Path,
    out_dir: str | Path,
    options: OutputOptions | None = None,
    progress: bool = False,
    label: str | None = None,
    on_frame: FrameCallback | None = None,
    atomic: bool = False,
) -> ScanResult:
    """Scan one input and write its files into ``out_dir`` (what ``fakescope scan`` does per input); ``on_frame``
    follows the analysis (``Scanner.scan``). Never raises
    for bad input or outputs that cannot be written: problems come back as ``verdict == "error"`` with a reason,
    and summary.json is written whenever the folder can take it.

    ``atomic``: the files go to a hidden folder beside ``out_dir`` that takes its name once summary.json is written
    in it, replacing an older ``out_dir`` as a whole. A scan killed half-way then leaves no folder under that name
    (``fakescope scan`` does this: ``out_dir`` belongs to the one input; without ``atomic`` it may hold anything).
    """
    source = as_source(path)
    out = Path(out_dir)
    shown = printable(label if label is not None else source_name(source))
    options = options or OutputOptions()
    folder = AtomicFolder(out) if atomic else None
    try:
        with writing_into(out):
            if folder is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                folder.create()
            else:
                out.mkdir(parents=True, exist_ok=True)
    except OutputError as error:
        result = scanner.new_result(source)
        result.reason = str(error)
        result.options = {**result.options, "outputs": options_record(options)}
        _finish_folder(result, out, out, None)
        return result
    write_dir = folder.temp_path if folder is not None else out
    try:
        writer = OutputWriter(scanner, write_dir, options, progress, shown, shown_dir=out)
        result = scanner.scan(source, progress=progress, label=shown, on_analysed=writer, on_frame=on_frame)
        result.options = {**result.options, "outputs": options_record(options)}
        _finish_folder(result, write_dir, out, folder)
    finally:
        if folder is not None and not folder.done:  # interrupted, or the summary could not be written
            folder.discard()
    return result


def _finish_folder(result: ScanResult, write_dir: Path, out: Path, folder: AtomicFolder | None) -> None:
    """Write summary.json into ``write_dir`` (the paths in it given where they end up, in ``out``) and, for an
    atomic scan, rename the folder into place; a failure to write becomes the result's error."""
    if folder is not None:
        result.outputs = _moved(result.outputs, write_dir, out)
    result.outputs = {"dir": str(out), **result.outputs}
    try:
        with writing_into(out):
            write_json(result.to_summary(), write_dir / "summary.json")
            if folder is not None:
                folder.commit()
            result.outputs["summary"] = str(out / "summary.json")
    except OutputError as error:
        result.verdict = "error"
        result.reason = f"{result.reason}; {error}" if result.reason else str(error)


def _moved(outputs: dict[str, Any], written: Path, final: Path) -> dict[str, Any]:
    """``outputs`` with the paths written under ``written`` given under ``final`` (where they end up)."""

    def move(value: Any) -> Any:
        if isinstance(value, list):
            return [move(item) for item in value]
        if isinstance(value, str):
            path = Path(value)
            if path == written or written in path.parents:
                return str(final / path.relative_to(written))
        return value

    return {key: move(value) for key, value in outputs.items()}
