"""``fakescope scan``: predict real or fake for videos, images and folders of them."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .arguments import add_model_options, positive_float, positive_int, probability

DESCRIPTION = """\
Scan videos, images or whole directories (recursively) for deepfaked faces.

For each input, DIR/<input name>/ receives:
  predictions.csv  a row per analysed face per frame (frame_index, time_s, track_id, box, p_fake, label),
                   and a row with label "no_face" for each analysed frame without a face
  summary.json     the verdict (real, fake, no_face or error with its reason), p_fake for the whole input,
                   the threshold, per-track scores, the model and its weights' sha256, timings
  annotated.mp4    every frame with a box per face, green real / red fake, and its score (H.264, plays in
                   browsers); annotated.jpg for images
  trend.png        p_fake over time per face track, with the threshold (videos)
  report.html      a self-contained page (images inlined, nothing fetched): verdict, trend, tracks, the most
                   fake frames, the model and how the verdict is computed (off with --no-report)
with --heatmap also (class-activation maps of the FAKE class, red where the face pushed the score towards fake):
  heatmap.mp4      the annotated video with each face's heatmap blended in; heatmap.jpg for images
  heatmaps/        track<id>_frame<index>.png (the frame) and track<id>_frame<index>_crop.png (the face
                   crop) for the 3 most fake frames of each track
and DIR/report.csv, DIR/report.json and DIR/index.html (linking each report.html) cover all inputs.

Verdict: each face track scores the mean p_fake of its frames; the input takes its most fake track
(--aggregate max_track). It is "fake" when that score is at or above the threshold.

Exit status: 0 when every input was scanned, 1 when some failed (the others are still scanned),
2 for a usage error (including missing or untrained weights).
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    from ..inference.results import AGGREGATIONS

    parser = commands.add_parser(
        "scan",
        help="scan videos, images or directories for deepfaked faces",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="videos, images, or directories to scan recursively")
    parser.add_argument("-o", "--out", type=Path, default=Path("fakescope-results"),
                        help="output directory (default: %(default)s)")
    model = add_model_options(parser)
    model.add_argument("--batch-size", type=positive_int, default=8, help="face crops per CNN batch (default: 8)")
    model.add_argument("--window", type=positive_int,
                       help="frames per temporal window of a track (default: the checkpoint's)")
    frames = parser.add_argument_group("frame selection (default: every frame)")
    choice = frames.add_mutually_exclusive_group()
    choice.add_argument("--every", type=positive_int, metavar="N", help="analyse every Nth frame")
    choice.add_argument("--frames", type=positive_int, metavar="N", help="analyse N evenly spaced frames")
    choice.add_argument("--fps", type=positive_float, metavar="F", help="analyse F frames per second")
    verdict = parser.add_argument_group("verdict")
    verdict.add_argument("--threshold", type=probability,
                         help="p_fake at or above which a face or input is called fake (default: the checkpoint's)")
    verdict.add_argument("--aggregate", choices=sorted(AGGREGATIONS), default="max_track",
                         help="how frame scores become the input's score: "
                              + "; ".join(f"{k}: {v}" for k, v in AGGREGATIONS.items()))
    faces = parser.add_argument_group("faces")
    faces.add_argument("--margin", type=positive_float, default=1.3,
                       help="crop side as a multiple of the face box (default: 1.3, the FaceForensics++ convention)")
    faces.add_argument("--detect-size", type=positive_int, default=640,
                       help="longest side of the downscaled frame the face detector sees (default: 640)")
    faces.add_argument("--min-face", type=positive_int, default=24,
                       help="ignore faces smaller than this many pixels (default: 24)")
    output = parser.add_argument_group("output")
    output.add_argument("--no-video", action="store_true", help="skip the annotated video")
    output.add_argument("--no-plot", action="store_true", help="skip trend.png")
    output.add_argument("--heatmap", action="store_true",
                        help="also write heatmaps of the FAKE class: heatmap.mp4 (heatmap.jpg for images) "
                             "and heatmaps/*.png of the most fake frames (one more decode and a backward pass per "
                             "analysed face)")
    output.add_argument("--heatmap-method", choices=["hirescam", "gradcam"], default="hirescam",
                        help="hirescam (default): gradient x activation per cell of the backbone's last stage, each "
                             "cell's own share of the fake score; gradcam: Grad-CAM, channel-mean gradients x "
                             "activations, smoother but it also lights regions the model does not pool")
    output.add_argument("--no-report", action="store_true", help="skip report.html and index.html")
    output.add_argument("--json", action="store_true",
                        help="print the summaries as JSON on standard output (messages go to standard error)")
    output.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import Detector, ScanOptions, WeightsError
    from ..inference.outputs import write_report
    from ..inference.results import ScanResult
    from ..models import CheckpointError
    from ..video import FrameSelection, find_media
    from .main import EXIT_FAILED, EXIT_OK, UsageError

    options = ScanOptions(
        selection=FrameSelection.from_options(every=args.every, frames=args.frames, fps=args.fps),
        threshold=args.threshold,
        aggregation=args.aggregate,
        batch_size=args.batch_size,
        window=args.window,
        margin=args.margin,
        detector_max_side=args.detect_size,
        min_face_size=args.min_face,
        annotate=not args.no_video,
        plot=not args.no_plot,
        precision=args.precision,
        heatmap=args.heatmap,
        heatmap_method=args.heatmap_method,
        report=not args.no_report,
    )
    try:
        detector = Detector.load(args.weights, device=args.device, allow_untrained=args.allow_untrained,
                                 options=options)
    except (WeightsError, CheckpointError, ValueError) as error:
        raise UsageError(str(error)) from error

    messages = sys.stderr if args.json else sys.stdout
    if not detector.meta.trained:
        print("WARNING: untrained model (--allow-untrained): the scores below mean nothing.", file=sys.stderr)
    inputs = find_media(args.paths)
    results: list[ScanResult] = []
    out_root: Path = args.out
    for item in inputs:
        if item.error:
            result = ScanResult(input=str(item.path), verdict="error", reason=item.error,
                                threshold=detector.threshold, model=detector.model_info())
        else:
            result = detector.scan(item.path, out_dir=out_root / item.output_name, progress=not args.quiet)
        results.append(result)
        print(_one_line(result), file=messages, flush=True)
    csv_path, _ = write_report(results, out_root)
    if not args.no_report:
        from ..visualization.report_html import write_index

        write_index(results, out_root)
    failed = sum(not result.ok for result in results)
    print(f"{len(results) - failed} of {len(results)} inputs scanned"
          + (f", {failed} failed" if failed else "") + f"; report: {csv_path}", file=messages)
    if args.json:
        json.dump([result.to_summary() for result in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_FAILED if failed else EXIT_OK


def _one_line(result) -> str:
    name = result.input
    if result.verdict == "error":
        return f"{name}: ERROR: {result.reason}"
    if result.verdict == "no_face":
        return f"{name}: NO FACE ({result.reason})"
    faces = f"faces on {result.frames_with_faces}/{result.frames_analysed} frames"
    warning = f" [{'; '.join(result.warnings)}]" if result.warnings else ""
    return f"{name}: {result.verdict.upper()} p_fake={result.p_fake:.3f} (threshold {result.threshold:.2f}, {faces}){warning}"
