"""``fakescope live``: real-time detection on a webcam, a video stream or a file played at its pace."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..options import LIVE_FACE_OPTIONS, AnalysisOptions, FaceOptions, LiveOptions
from .arguments import add_model_options, positive_int
from .exit_codes import EXIT_FAILED, EXIT_OK, UsageError
from .option_fields import add_options, options_from_args

if TYPE_CHECKING:
    import numpy as np

DESCRIPTION = """\
Detect deepfaked faces live: on a webcam ("--source 0"), a network stream (rtsp://, http(s)://) or a video file
played at its real-time pace. Every frame is shown (or written with --output) with a box per face, coloured by
the face's smoothed verdict (green real, red fake), its current score, and the frames and analyses per second.

Predictions are causal: each face track carries the model's RNN state from analysed frame to analysed frame
(a fresh state every `window` analysed frames, as scan's windows). When the model is slower than the source, the
newest frame is analysed and the others are shown with the latest boxes, so the delay stays bounded.

Press q in the window or Ctrl-C to stop; the output file is finished either way.

Exit status: 0 when the source ended or the run was stopped, 1 when the source could not be opened,
2 for a usage error (including missing or untrained weights).
"""


LIVE_ANALYSIS_FIELDS = ("precision", "runtime", "onnx_model", "window", "threshold")
"""The analysis options live takes (it scores every analysed frame as it comes: no batches, no frame selection,
no aggregation)."""


class DisplayUnavailable(RuntimeError):
    """No way to show frames on this machine."""


class FrameDisplay(Protocol):
    def show(self, image_bgr: np.ndarray) -> bool:
        """Show a frame; False when the user asked to quit."""
        ...

    def close(self) -> None: ...


class OpenCVWindow:
    """A HighGUI window (needs an OpenCV build with GUI support, i.e. opencv-python rather than -headless)."""

    def __init__(self, title: str) -> None:
        import cv2

        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as error:
            raise DisplayUnavailable("this OpenCV build has no GUI support (opencv-python-headless)") from error

    def show(self, image_bgr: np.ndarray) -> bool:
        import cv2

        cv2.imshow(self.title, image_bgr)
        return (cv2.waitKey(1) & 0xFF) != ord("q")

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


class MatplotlibWindow:
    """Fallback window through matplotlib's interactive backends (Tk, Qt, GTK) where one works."""

    BACKENDS = ("TkAgg", "QtAgg", "GTK4Agg", "GTK3Agg")

    def __init__(self, title: str) -> None:
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise DisplayUnavailable("matplotlib is not installed") from error
        for backend in self.BACKENDS:
            try:
                plt.switch_backend(backend)
                break
            except Exception:  # noqa: BLE001 - missing toolkit or no display: try the next backend
                continue
        else:
            raise DisplayUnavailable("no interactive matplotlib backend works here (Tk, Qt or GTK)")
        self._plt = plt
        self._figure = plt.figure(title)
        self._axes = self._figure.add_axes((0, 0, 1, 1))
        self._axes.set_axis_off()
        self._image = None
        self._quit = False
        self._figure.canvas.mpl_connect("key_press_event", self._on_key)
        self._figure.canvas.mpl_connect("close_event", self._on_close)
        plt.show(block=False)

    def _on_key(self, event) -> None:
        if event.key == "q":
            self._quit = True

    def _on_close(self, _event) -> None:
        self._quit = True

    def show(self, image_bgr: np.ndarray) -> bool:
        rgb = image_bgr[:, :, ::-1]
        if self._image is None:
            self._image = self._axes.imshow(rgb)
        else:
            self._image.set_data(rgb)
        self._figure.canvas.draw_idle()
        self._figure.canvas.flush_events()
        return not self._quit

    def close(self) -> None:
        self._plt.close(self._figure)


def open_display(title: str) -> FrameDisplay:
    """An OpenCV window, else a matplotlib one; DisplayUnavailable with every reason when neither works."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayUnavailable("no display here (DISPLAY and WAYLAND_DISPLAY are unset)")
    reasons = []
    for window in (OpenCVWindow, MatplotlibWindow):
        try:
            return window(title)
        except DisplayUnavailable as error:
            reasons.append(str(error))
    raise DisplayUnavailable("; ".join(reasons))


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "live",
        help="detect deepfaked faces live on a webcam, stream or file",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-s", "--source", required=True,
                        help='webcam index ("0"), video file, or stream URL (rtsp://, http(s)://) OpenCV opens')
    groups = {"model": add_model_options(parser)}
    add_options(parser, AnalysisOptions, groups, only=LIVE_ANALYSIS_FIELDS)
    groups["model"].add_argument("--threads", type=positive_int,
                                 help="CPU threads for the model (default: PyTorch's choice)")
    add_options(parser, LiveOptions, groups, only=["smooth"])
    add_options(parser, FaceOptions, groups, defaults=LIVE_FACE_OPTIONS)
    source = parser.add_argument_group("source and output")
    groups[source.title] = source
    source.add_argument("-o", "--output", type=Path, help="write the annotated frames to this H.264 .mp4")
    source.add_argument("--no-display", action="store_true", help="no window (servers; use with --output)")
    add_options(parser, LiveOptions, groups, only=["realtime", "max_frames", "duration_s", "retries", "timeout_s"])
    parser.set_defaults(run=run)


def live_options(args: argparse.Namespace) -> tuple[FaceOptions, AnalysisOptions, LiveOptions]:
    """The options of a ``fakescope live`` command line."""
    return (options_from_args(FaceOptions, args, defaults=LIVE_FACE_OPTIONS),
            options_from_args(AnalysisOptions, args, only=LIVE_ANALYSIS_FIELDS),
            options_from_args(LiveOptions, args))


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis import Scanner, WeightsError
    from ..analysis.live import LiveAnalyzer, LiveSourceError
    from ..models import CheckpointError

    if args.no_display and args.output is None:
        print("note: --no-display without --output: frames are analysed but neither shown nor saved",
              file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    faces, analysis, options = live_options(args)
    try:
        scanner = Scanner.load(args.weights, device=args.device, allow_untrained=args.allow_untrained,
                               faces=faces, analysis=analysis)
        live = LiveAnalyzer(scanner, args.source, options)
    except (WeightsError, CheckpointError, ValueError) as error:
        raise UsageError(str(error)) from error
    untrained = not scanner.meta.trained
    if untrained:
        print("WARNING: untrained model (--allow-untrained): the scores shown mean nothing.", file=sys.stderr)

    display = None
    if not args.no_display:
        try:
            display = open_display(f"fakescope live: {args.source}")
        except DisplayUnavailable as error:
            print(f"fakescope live: error: cannot open a window: {error}. Use --no-display (with --output FILE "
                  "to save the annotated video).", file=sys.stderr)
            return EXIT_FAILED
    try:
        live.open()
    except LiveSourceError as error:
        if display is not None:
            display.close()
        print(f"fakescope live: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    interrupted, written = _show_and_write(live, scanner, display, args.output, untrained)
    if live.end_reason:
        print(f"fakescope live: {live.end_reason}; stopped", file=sys.stderr)
    _print_summary(live, args.output if written else None, interrupted)
    return EXIT_OK


def _show_and_write(live, scanner, display: FrameDisplay | None, output: Path | None,
                    untrained: bool) -> tuple[bool, bool]:
    """Draw every live frame, show it and write it to ``output``, until the source ends, the window is closed or
    Ctrl-C; returns (interrupted, whether anything was written)."""
    from ..outputs.live_view import banner_text, render_live_frame
    from ..video import VideoWriter

    writer = None
    interrupted = False
    try:
        for frame in live:
            image = render_live_frame(frame, scanner.threshold, banner_text(frame, live.stats, untrained))
            if output is not None:
                if writer is None:
                    height, width = image.shape[:2]
                    writer = VideoWriter(output, width, height, live.fps)
                elif image.shape[:2] != (writer.height, writer.width):  # a reconnected stream may change size
                    import cv2

                    image = cv2.resize(image, (writer.width, writer.height))
                writer.write(image)
            if display is not None and not display.show(image):
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        live.stop()
        if writer is not None:
            writer.close()
        if display is not None:
            display.close()
    return interrupted, writer is not None


def _print_summary(live, output: Path | None, interrupted: bool) -> None:
    summary = live.stats.summary()
    how = "interrupted" if interrupted else "done"
    line = (f"{how}: {summary['frames_shown']} frames shown ({summary['shown_fps']} fps), "
            f"{summary['frames_analysed']} analysed ({summary['analysis_fps']}/s)")
    if summary["latency_median_ms"] is not None:
        line += f", latency median {summary['latency_median_ms']} ms, p95 {summary['latency_p95_ms']} ms"
    print(line)
    if output is not None:
        print(f"annotated video: {output}")
