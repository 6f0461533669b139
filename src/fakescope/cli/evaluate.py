"""``fakescope evaluate``: measure a checkpoint on labelled datasets, at frame level and at video level."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..options import AnalysisOptions
from ..video import FrameSelection
from .arguments import add_model_options, positive_int
from .exit_codes import EXIT_FAILED, EXIT_OK, UsageError
from .option_fields import add_options, options_from_args

EVALUATION_OPTIONS = AnalysisOptions(selection=FrameSelection("count", 32))
"""Evaluation's defaults: 32 evenly spaced frames per video."""
EVALUATION_FIELDS = ("precision", "runtime", "onnx_model", "batch_size", "selection", "threshold")


if TYPE_CHECKING:
    from ..data.items import VideoItem

DESCRIPTION = """\
Scan the videos of one or more labelled datasets with a checkpoint and measure it, for example:

  fakescope evaluate --weights runs/ffpp/model.safetensors \\
      --data 'ffpp:../shared/data/ffpp-mini?holdout=585,599' --split val --out eval/ffpp-val

SPEC is KIND:ROOT[?key=value&...] (kinds: ffpp, dfdc, celebdf, folder, manifest). A folder dataset holds
ROOT/real/ and ROOT/fake/.

Metrics come at two levels, always labelled as such:
  frame-level  every analysed face crop on its own (from the face tracks that count in the verdict)
  video-level  one score per video: its aggregated p_fake, the score behind its verdict
Videos without a face, or that fail to decode, are left out of both levels and listed as not scored.
Per-method rows use the method's fakes together with all reals of the same dataset.

DIR receives metrics.json, metrics.md (tables), roc.png, confusion.png, predictions.csv (a row per analysed
face) and videos.csv (a row per video, with its verdict or the reason it was not scored).

Exit status: 0 when every video was scanned, 1 when some failed (the others still count), 2 for a usage error.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="measure a checkpoint on labelled datasets (frame-level and video-level metrics)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", action="append", required=True, metavar="SPEC",
                        help="a dataset to evaluate on, KIND:ROOT[?options] (repeat for several)")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="output directory for the report")
    parser.add_argument("--split", help="evaluate only the videos of this split (train, val or test)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="evaluate at most N videos: reals and fakes alternately, drawn in turn from each dataset "
                             "and method so that every one stays represented")
    groups = {"model": add_model_options(parser, weights_help="checkpoint (.safetensors) to evaluate (default: the "
                                                              "weights shipped with fakescope)")}
    add_options(parser, AnalysisOptions, groups, defaults=EVALUATION_OPTIONS, only=EVALUATION_FIELDS)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _interleave(queues: list[list[VideoItem]]) -> list[VideoItem]:
    """One item from each queue in turn, until all are empty."""
    merged: list[VideoItem] = []
    for depth in range(max((len(queue) for queue in queues), default=0)):
        merged.extend(queue[depth] for queue in queues if depth < len(queue))
    return merged


def limit_items(items: list[VideoItem], limit: int | None) -> list[VideoItem]:
    """At most ``limit`` items, alternating real and fake; the reals taken in turn from each dataset, the fakes
    from each (dataset, method). Stable for the same items."""
    from ..data.items import FAKE

    if limit is None or len(items) <= limit:
        return list(items)
    groups: dict[tuple[int, str, str], list[VideoItem]] = {}
    for item in sorted(items, key=lambda item: item.key or str(item.path)):
        method = item.method if item.label == FAKE else ""
        groups.setdefault((item.label, item.dataset, method), []).append(item)
    reals = _interleave([groups[name] for name in sorted(groups) if name[0] != FAKE])
    fakes = _interleave([groups[name] for name in sorted(groups) if name[0] == FAKE])
    return _interleave([reals, fakes])[:limit]


def run(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..data.items import DatasetSpec
    from ..evaluation import evaluate_videos
    from ..analysis import Scanner, WeightsError
    from ..models import CheckpointError

    try:
        specs = [DatasetSpec.parse(text) for text in args.data]
    except ValueError as error:
        raise UsageError(str(error)) from error
    items = []
    for spec in specs:
        try:
            items.extend(load_dataset(spec))
        except (ValueError, FileNotFoundError, NotADirectoryError) as error:
            raise UsageError(f"cannot read dataset {spec.kind}:{spec.root}: {error}") from error
    if args.split is not None:
        available = sorted({str(item.split) for item in items})
        items = [item for item in items if item.split == args.split]
        if not items:
            raise UsageError(f"no video of split {args.split!r} in the data (splits present: {', '.join(available)})")
    if not items:
        raise UsageError("the datasets hold no videos")
    items = limit_items(items, args.limit)

    analysis = options_from_args(AnalysisOptions, args, defaults=EVALUATION_OPTIONS, only=EVALUATION_FIELDS)
    selection = analysis.selection
    try:
        detector = Scanner.load(args.weights, device=args.device, allow_untrained=args.allow_untrained,
                                analysis=analysis)
    except (WeightsError, CheckpointError, ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    if not detector.meta.trained:
        print("WARNING: untrained model (--allow-untrained): the metrics below mean nothing.", file=sys.stderr)

    result = evaluate_videos(detector, items, progress=not args.quiet, save_predictions_dir=args.out)
    inputs: dict[str, Any] = {
        "weights": detector.meta.path,
        "weights_sha256": detector.meta.sha256,
        "trained": detector.meta.trained,
        "data": [spec.to_dict() for spec in specs],
        "split": args.split,
        "limit": args.limit,
        "videos": len(items),
        "frame_selection": selection.describe(),
        "aggregation": detector.analysis.aggregation,
        "threshold": detector.threshold,
        "threshold_source": "--threshold" if args.threshold is not None else "checkpoint",
        "device": str(detector.device),
    }
    title = f"fakescope evaluation of {Path(detector.meta.path).name} on " + ", ".join(f"{s.kind}:{s.root.name}" for s in specs)
    if args.split:
        title += f" ({args.split} split)"
    result.write_report(args.out, title, inputs)

    print(_summary(result.metrics))
    print(f"report: {result.files['markdown']} (also metrics.json, roc.png, confusion.png, predictions.csv, "
          f"videos.csv in {args.out})")
    return EXIT_FAILED if result.failed else EXIT_OK


def _summary(metrics: dict[str, Any]) -> str:
    videos, video, frame = metrics["videos"], metrics["video_level"], metrics["frame_level"]

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{videos['total']} videos: {videos['scored']} scored, {videos['not_scored']} not scored "
        f"({videos['no_face']} without a face, {videos['failed']} failed); threshold {metrics['threshold']:.3f}",
        f"video-level: AUC {number(video['auc'])}, accuracy {number(video['accuracy'])} "
        f"({video['n_real']} real / {video['n_fake']} fake videos)",
        f"frame-level: AUC {number(frame['auc'])}, accuracy {number(frame['accuracy'])} "
        f"({frame['n']} faces from {frame['n_videos']} videos)",
    ]
    return "\n".join(lines)
