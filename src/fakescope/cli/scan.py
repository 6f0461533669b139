"""``fakescope scan``: predict real or fake for videos, images and folders of them."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..names import printable
from ..options import AnalysisOptions, FaceOptions, OutputOptions
from ..video.media import source_name
from .arguments import add_model_options
from .exit_codes import EXIT_FAILED, EXIT_OK, UsageError
from .option_fields import add_options, options_from_args

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

Inputs: files of any container and codec FFmpeg decodes (mp4, mov, mkv, webm, avi, mpg, ts, flv, wmv, 3gp,
gif ...) and images (jpg, png, webp, bmp, tiff, heic), recognised by content; http(s) and rtsp URLs. Files of a
directory that are not video or image are listed in the report as skipped, with the reason.

Exit status: 0 when every input was scanned, 1 when some failed (the others are still scanned),
2 for a usage error (including missing or untrained weights, or an --out that cannot be written).
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "scan",
        help="scan videos, images or directories for deepfaked faces",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="videos, images, directories to scan recursively, or http(s)/rtsp URLs")
    parser.add_argument("-o", "--out", type=Path, default=Path("fakescope-results"),
                        help="output directory (default: %(default)s)")
    groups = {"model": add_model_options(parser)}
    add_options(parser, AnalysisOptions, groups)
    add_options(parser, FaceOptions, groups)
    add_options(parser, OutputOptions, groups)
    output = groups["output"]
    output.add_argument("--json", action="store_true",
                        help="print the summaries as JSON on standard output (messages go to standard error)")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="no progress display (by default: bars on a terminal; where standard error is a file "
                             "or pipe, a progress line now and then)")
    parser.set_defaults(run=run)


def scan_options(args: argparse.Namespace) -> tuple[FaceOptions, AnalysisOptions, OutputOptions]:
    """The options of a ``fakescope scan`` command line."""
    return (options_from_args(FaceOptions, args), options_from_args(AnalysisOptions, args),
            options_from_args(OutputOptions, args))


def run(args: argparse.Namespace) -> int:
    from ..analysis import Scanner, WeightsError
    from ..models import CheckpointError
    from ..outputs import scan_to_folder
    from ..progress import progress, reset_line_clock
    from ..results import ScanResult
    from ..video import iter_media

    faces, analysis, outputs = scan_options(args)
    try:
        scanner = Scanner.load(args.weights, device=args.device, allow_untrained=args.allow_untrained,
                               faces=faces, analysis=analysis)
    except (WeightsError, CheckpointError, ValueError) as error:
        raise UsageError(str(error)) from error
    out_root: Path = args.out
    prepare_output_dir(out_root, UsageError)

    messages = sys.stderr if args.json else sys.stdout
    if not scanner.meta.trained:
        print("WARNING: untrained model (--allow-untrained): the scores below mean nothing.", file=sys.stderr)
    reset_line_clock()
    results: list[ScanResult] = []
    counter = progress(None, "fakescope scan", "input", enabled=not args.quiet and not sys.stderr.isatty())
    for number, item in enumerate(iter_media(args.paths, exclude=[out_root]), start=1):
        if item.error or item.skipped:
            result = ScanResult(input=str(item.path), verdict="error" if item.error else "skipped",
                                reason=item.error or item.skipped, threshold=scanner.threshold,
                                model=scanner.model_info())
        else:
            label = f"[{number}] {printable(source_name(item.path))}"
            result = scan_to_folder(scanner, item.path, out_root / item.output_name, outputs,
                                    progress=not args.quiet, label=label)
        result.frames = []  # the report needs only the summary: memory stays flat over thousands of inputs
        results.append(result)
        print(one_line(result), file=messages, flush=True)
        counter.update(1)
    counter.close()
    failed = sum(not result.ok for result in results)
    report_failure = _write_run_files(results, out_root, outputs.report)
    scanned = sum(result.scanned for result in results)
    skipped = sum(result.verdict == "skipped" for result in results)
    total = len(results) - skipped
    line = f"{scanned} of {total} inputs scanned" + (f", {failed} failed" if failed else "")
    if skipped:
        line += f"; {skipped} file{'s' if skipped != 1 else ''} skipped (not a video or image, listed in the report)"
    if report_failure:
        print(f"{line}; {report_failure}", file=messages)
    else:
        print(f"{line}; report: {printable(str(out_root / 'report.csv'))}", file=messages)
    if args.json:
        json.dump([result.to_summary() for result in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_FAILED if failed or report_failure else EXIT_OK


def prepare_output_dir(out: Path, error_type: type[Exception]) -> None:
    """Create ``out`` and check that files can be written there, before any work: an existing file in the way, a
    read-only file system or a missing permission raise ``error_type`` with the reason."""
    from ..atomic import AtomicOutput

    shown = printable(str(out))
    if out.exists() and not out.is_dir():
        raise error_type(f"--out {shown}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise error_type(f"--out {shown}: a file is in the way of the output directory") from None
    except OSError as error:
        raise error_type(f"--out {shown}: cannot create the output directory: {error.strerror or error}") from None
    check = AtomicOutput(out / "report.json")
    try:
        with open(check.temp_path, "wb") as handle:
            handle.write(b"{}\n")
    except OSError as error:
        raise error_type(f"--out {shown}: cannot write there: {error.strerror or error}") from None
    finally:
        check.discard()


def _write_run_files(results: list, out_root: Path, html: bool) -> str | None:
    """Write report.csv, report.json (and index.html); returns why they could not be written, or None."""
    from ..outputs.html_pages import write_run_index
    from ..outputs.saving import describe_os_error, os_error_in
    from ..outputs.tables import write_run_tables

    try:
        out_root.mkdir(parents=True, exist_ok=True)
        write_run_tables(results, out_root)
        if html:
            write_run_index(results, out_root)
    except Exception as error:  # noqa: BLE001 - a full disk or a removed folder must not end in a traceback
        os_error = os_error_in(error)
        if os_error is None:
            raise
        return f"the run report could not be written to {printable(str(out_root))}: {describe_os_error(os_error)}"
    return None


def one_line(result) -> str:
    """The line printed for one input; its name escaped so that it stays one line."""
    name = printable(result.input)
    if result.verdict == "error":
        return f"{name}: ERROR: {printable(result.reason or '')}"
    if result.verdict == "skipped":
        return f"{name}: SKIPPED ({printable(result.reason or '')})"
    if result.verdict == "no_face":
        return f"{name}: NO FACE ({result.reason})"
    faces = f"faces on {result.frames_with_faces}/{result.frames_analysed} frames"
    warning = f" [{'; '.join(printable(w) for w in result.warnings)}]" if result.warnings else ""
    return f"{name}: {result.verdict.upper()} p_fake={result.p_fake:.3f} (threshold {result.threshold:.2f}, {faces}){warning}"
