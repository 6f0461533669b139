"""``fakescope scan``: predict real or fake for videos, images and folders of them."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..names import printable
from ..options import AnalysisOptions, FaceOptions, OutputOptions, RunOptions
from ..video.media import source_name
from .arguments import add_model_options
from .exit_codes import EXIT_FAILED, EXIT_OK, UsageError
from .option_fields import add_options, options_from_args

if TYPE_CHECKING:
    from ..cluster import RayScans
    from ..outputs.runs import LocalScans, Resumption, RunSummaries, ScanJob

DESCRIPTION = """\
Scan videos, images or whole directories (recursively) for deepfaked faces.

For each input, DIR/<input name>/ receives:
  predictions.csv  a row per analysed face per frame (frame_index, time_s, track_id, box, p_fake, label),
                   and a row with label "no_face" for each analysed frame without a face
  summary.json     the verdict (real, fake, no_face or error with its reason), p_fake for the whole input,
                   the threshold, per-track scores, the model and its weights' sha256, timings, options
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
Each input's folder is written under a hidden name and renamed once complete (replacing an older one).

Verdict: each face track scores the mean p_fake of its frames; the input takes its most fake track
(--aggregate max_track). It is "fake" when that score is at or above the threshold.

Inputs: files of any container and codec FFmpeg decodes (mp4, mov, mkv, webm, avi, mpg, ts, flv, wmv, 3gp,
gif ...) and images (jpg, png, webp, bmp, tiff, heic), recognised by content; http(s) and rtsp URLs. Files of a
directory that are not video or image are listed in the report as skipped, with the reason.

Cluster: --cluster ray|auto|ray://HOST:PORT scans the inputs on Ray workers (pip install 'fakescope[cluster]'),
each holding one model, and writes the same files; the inputs, --weights and --out must be on a file system that
every node sees at the same paths. A worker that dies has its input scanned again by another.
Resume: --resume keeps what an interrupted run into the same --out finished with the same options and weights.

Exit status: 0 when every input was scanned, 1 when some failed (the others are still scanned),
2 for a usage error (including missing or untrained weights, an --out that cannot be written, or a cluster that
cannot be used).
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
    add_options(parser, RunOptions, groups)
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
    faces, analysis, outputs = scan_options(args)
    run_options = options_from_args(RunOptions, args)
    if run_options.cluster_workers is not None and run_options.cluster is None:
        raise UsageError("--cluster-workers needs --cluster")
    from ..atomic import remove_leftovers
    from ..outputs.runs import run_options_record

    # A local run loads the weights first, so that unusable weights leave no output folder behind.
    scans: LocalScans | RayScans | None = None
    if run_options.cluster is None:
        scans = _local_scans(args, faces, analysis, outputs)
    prepare_output_dir(args.out, UsageError)
    if run_options.resume:
        remove_leftovers(args.out)  # before a cluster's workers start: the file they check is one such too
    if scans is None:
        scans = _cluster_scans(args, run_options, faces, analysis, outputs)
    try:
        return _scan_all(args, scans, run_options, run_options_record(faces, analysis, outputs))
    finally:
        scans.close()


def _local_scans(args: argparse.Namespace, faces: FaceOptions, analysis: AnalysisOptions,
                 outputs: OutputOptions) -> LocalScans:
    from ..analysis import Scanner, WeightsError
    from ..models import CheckpointError
    from ..outputs.runs import LocalScans

    try:
        scanner = Scanner.load(args.weights, device=args.device, allow_untrained=args.allow_untrained,
                               faces=faces, analysis=analysis)
        if outputs.heatmap:
            scanner.build_model()
    except (WeightsError, CheckpointError, ValueError) as error:
        raise UsageError(str(error)) from error
    return LocalScans(scanner, outputs, progress=not args.quiet)


def _cluster_scans(args: argparse.Namespace, run_options: RunOptions, faces: FaceOptions, analysis: AnalysisOptions,
                   outputs: OutputOptions) -> RayScans:
    from ..cluster import ClusterError, RayScans, WorkerSetup

    weights = str(args.weights) if args.weights is not None else None
    setup = WorkerSetup(weights, args.allow_untrained, faces, analysis, outputs)
    scans = RayScans(run_options.cluster, setup, args.out, workers=run_options.cluster_workers, device=args.device)
    if not args.quiet:
        print(f"fakescope scan: starting Ray workers ({run_options.cluster}) ...", file=sys.stderr, flush=True)
    try:
        scans.start()
    except ClusterError as error:
        scans.close()
        raise UsageError(str(error)) from error
    except BaseException:
        scans.close()
        raise
    if not args.quiet:
        print(f"fakescope scan: scanning on {scans.describe()}", file=sys.stderr, flush=True)
    return scans


def _scan_all(args: argparse.Namespace, scans: LocalScans | RayScans, run_options: RunOptions,
              options: dict) -> int:
    """List the inputs, scan those not kept from an earlier run, print a line per input and write the run's
    report; the exit status."""
    from ..cluster import ClusterError
    from ..outputs.runs import Resumption, RunSummaries, ScanJob
    from ..progress import print_line, progress, reset_line_clock
    from ..results import ScanResult
    from ..video import iter_media

    out_root: Path = args.out
    messages = sys.stderr if args.json else sys.stdout
    if not scans.model.get("trained", True):
        print("WARNING: untrained model (--allow-untrained): the scores below mean nothing.", file=sys.stderr)
    resumption = None
    if run_options.resume:
        resumption = Resumption(options, scans.model.get("sha256", ""))
    reset_line_clock()
    on_cluster = run_options.cluster is not None
    # Locally each input shows its own bars on a terminal; the workers of a cluster show none, so the run does.
    counter = progress(None, "fakescope scan", "input", enabled=not args.quiet and (on_cluster or not sys.stderr.isatty()))
    summaries = RunSummaries()

    def record(index: int, summary: dict, show: bool = True) -> None:
        summaries.add(index, summary)
        if show:
            print_line(counter, one_line(summary), messages)
        counter.update(1)

    def jobs() -> Iterator[ScanJob]:
        for index, item in enumerate(iter_media(args.paths, exclude=[out_root])):
            if item.error or item.skipped:
                record(index, ScanResult(input=str(item.path), verdict="error" if item.error else "skipped",
                                         reason=item.error or item.skipped, threshold=scans.threshold,
                                         model=scans.model).to_summary())
                continue
            job = ScanJob(index, item.path, out_root / item.output_name,
                          f"[{index + 1}] {printable(source_name(item.path))}")
            kept = resumption.finished(job) if resumption is not None else None
            if kept is not None:
                record(index, kept, show=False)
                continue
            yield job

    try:
        for job, summary in scans.scan(jobs()):
            record(job.index, summary)
        counter.close()
        return _finish(args, summaries, resumption)
    except ClusterError as error:
        raise UsageError(str(error)) from error
    finally:
        summaries.close()


def _finish(args: argparse.Namespace, summaries: RunSummaries, resumption: Resumption | None) -> int:
    """Write the run's report, print its last line (and the summaries with --json); the exit status."""
    from ..outputs.tables import dump_json_list

    out_root: Path = args.out
    messages = sys.stderr if args.json else sys.stdout
    failed = summaries.count("error")
    report_failure = _write_run_files(summaries, out_root, args.report)
    scanned = summaries.count("real", "fake", "no_face")
    skipped = summaries.count("skipped")
    total = summaries.total - skipped
    line = f"{scanned} of {total} inputs scanned" + (f", {failed} failed" if failed else "")
    if resumption is not None and resumption.kept:
        line += f" ({resumption.kept} kept from the earlier run"
        if resumption.redone:
            line += f"; {resumption.redone} made with other options or weights scanned again"
        line += ")"
    if skipped:
        line += f"; {skipped} file{'s' if skipped != 1 else ''} skipped (not a video or image, listed in the report)"
    if report_failure:
        print(f"{line}; {report_failure}", file=messages)
    else:
        print(f"{line}; report: {printable(str(out_root / 'report.csv'))}", file=messages)
    if args.json:
        dump_json_list(summaries, sys.stdout)
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


def _write_run_files(results: Iterable[dict], out_root: Path, html: bool) -> str | None:
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


def one_line(summary: dict) -> str:
    """The line printed for one input (from its summary); its name escaped so that it stays one line."""
    name = printable(summary["input"])
    verdict, reason = summary["verdict"], summary["reason"]
    if verdict == "error":
        return f"{name}: ERROR: {printable(reason or '')}"
    if verdict == "skipped":
        return f"{name}: SKIPPED ({printable(reason or '')})"
    if verdict == "no_face":
        return f"{name}: NO FACE ({reason})"
    faces = f"faces on {summary['frames_with_faces']}/{summary['frames_analysed']} frames"
    warnings = summary["warnings"]
    warning = f" [{'; '.join(printable(w) for w in warnings)}]" if warnings else ""
    return (f"{name}: {verdict.upper()} p_fake={summary['p_fake']:.3f} (threshold {summary['threshold']:.2f}, "
            f"{faces}){warning}")
