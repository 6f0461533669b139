"""The options of every job, each defined once: a dataclass per concern, whose fields carry their command line.

* ``FaceOptions``: finding and cropping faces (scan, live).
* ``AnalysisOptions``: running the model over the faces and turning scores into a verdict (scan, live, evaluate).
* ``OutputOptions``: which files a scan writes.
* ``LiveOptions``: how the live loop paces, drops, smooths and stops.
* ``RunOptions``: where a scan run's inputs are scanned (here, or on a Ray cluster) and whether it resumes.

Each field's metadata (``option(...)``) holds its help, choices, argument type, group and flag; ``fakescope.cli``
builds its parsers from them, so a default or a list of choices exists in one place only. The flag is
``--<field-name>`` (underscores as dashes) unless ``flag`` says otherwise; a boolean that defaults to true is
switched off by its flag (``--no-video``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .results import AGGREGATIONS, DEFAULT_AGGREGATION
from .video import FrameSelection

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Compute precisions of the CNN: ``auto`` is bf16 on a CPU with native bf16 (AVX-512 BF16 or AMX) and on a GPU
with bf16, fp16 on an older GPU, fp32 on other CPUs (``fakescope.analysis.encoder.auto_precision``)."""

RUNTIMES = ("torch", "onnx")
"""What runs the model: PyTorch, or ONNX Runtime on a file written by ``fakescope export --format onnx``."""

CAM_METHODS = ("hirescam", "gradcam")
"""Class-activation methods of the heatmaps."""

SELECTION = "selection"
"""``option(kind=SELECTION)``: a FrameSelection, given as one of --every N, --frames N or --fps F (its group's title
says the default)."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be positive")
    return value


def cluster_address(text: str) -> str:
    """``ray``, ``auto`` or ``ray://HOST[:PORT]`` (``--cluster``)."""
    if text in ("ray", "auto"):
        return text
    if text.startswith("ray://") and text[len("ray://"):].split(":", 1)[0]:
        port = text[len("ray://"):].partition(":")[2]
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise argparse.ArgumentTypeError(f"bad port in {text!r}")
        return text
    raise argparse.ArgumentTypeError(f"expected ray, auto or ray://HOST[:PORT], got {text!r}")


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    group: str = "",
    flag: str | None = None,
    type: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    negatable: bool = False,
    kind: str = "",
    cli: bool = True,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its command-line description in its metadata.

    ``negatable``: a boolean given as ``--flag/--no-flag``. ``cli=False``: a field for the Python API only.
    """
    metadata = {"help": help, "group": group, "flag": flag, "type": type, "choices": choices, "metavar": metavar,
                "negatable": negatable, "kind": kind, "cli": cli}
    return field(default=default, default_factory=default_factory, metadata=metadata)


@dataclass
class FaceOptions:
    """Finding faces and cropping them for the model."""

    margin: float = option(1.3, type=positive_float, group="faces",
                           help="crop side as a multiple of the face box (default: %(default)s, the "
                                "FaceForensics++ convention)")
    detect_size: int = option(640, type=positive_int, group="faces",
                              help="longest side of the downscaled frame the face detector sees "
                                   "(default: %(default)s)")
    detect_score: float = option(0.6, type=probability, group="faces",
                                 help="face detector confidence at or above which a face counts "
                                      "(default: %(default)s)")
    min_face: int = option(24, type=positive_int, group="faces",
                           help="ignore faces smaller than this many pixels (default: %(default)s)")
    detect_every: int = option(5, type=positive_int, metavar="K", group="faces",
                               help="run the face detector when K or more frames of the video have passed since it "
                                    "last ran, and follow each face by template matching in between; it runs at "
                                    "once on a scene cut or when a face is not followed with confidence. Counted in "
                                    "the video's frames, so sparse frame selections (--frames 32) are detected on "
                                    "every analysed frame unless K exceeds their spacing (1: detect every analysed "
                                    "frame; default: %(default)s)")


LIVE_FACE_OPTIONS = FaceOptions(detect_size=480)
"""``live``'s face defaults: a smaller detector input than scan's, to keep up with live video."""


@dataclass
class AnalysisOptions:
    """Running the model over the faces of the selected frames, and how their scores become a verdict."""

    precision: str = option("auto", choices=PRECISIONS, group="model",
                            help="compute precision of the CNN (default: auto, which is bf16 on CPUs with native bf16 "
                                 "(AVX-512 BF16 or AMX) and on GPUs with bf16, fp16 on older GPUs, fp32 on other "
                                 "CPUs; with --runtime onnx the file's own precision, fp32 or int8)")
    runtime: str = option("torch", choices=RUNTIMES, group="model",
                          help="what runs the model: torch (default) or onnx, ONNX Runtime on --onnx-model's file "
                               "(CUDA when onnxruntime-gpu and a GPU are there, else the CPU); --heatmap still uses "
                               "the PyTorch model of the same weights")
    onnx_model: str | None = option(None, type=str, metavar="FILE", group="model",
                                    help="the encoder file `fakescope export --format onnx` wrote (its .head.onnx "
                                         "beside it), exported from the weights in use; for --runtime onnx")
    batch_size: int = option(32, type=positive_int, group="model",
                             help="face crops per CNN batch: larger batches run faster per crop on CPUs, with the "
                                  "same scores (default: %(default)s)")
    window: int | None = option(None, type=positive_int, group="model",
                                help="frames per temporal window of a track; live resets a track's RNN state after "
                                     "this many analysed frames (default: the checkpoint's)")
    selection: FrameSelection = option(default_factory=FrameSelection, kind=SELECTION, group="frame selection")
    threshold: float | None = option(None, type=probability, group="verdict",
                                     help="p_fake at or above which a face or input is called fake (default: the "
                                          "checkpoint's)")
    aggregation: str = option(DEFAULT_AGGREGATION, flag="--aggregate", choices=tuple(sorted(AGGREGATIONS)),
                              group="verdict",
                              help="how frame scores become the input's score: "
                                   + "; ".join(f"{k}: {v}" for k, v in AGGREGATIONS.items()))

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}")


@dataclass
class OutputOptions:
    """Which files a scan writes besides predictions.csv and summary.json."""

    annotate: bool = option(True, flag="--no-video", group="output", help="skip the annotated video")
    plot: bool = option(True, flag="--no-plot", group="output", help="skip trend.png")
    heatmap: bool = option(False, group="output",
                           help="also write heatmaps of the FAKE class: heatmap.mp4 (heatmap.jpg for images) and "
                                "heatmaps/*.png of the most fake frames (one more decode and a backward pass per "
                                "analysed face)")
    heatmap_method: str = option("hirescam", choices=CAM_METHODS, group="output",
                                 help="hirescam (default): gradient x activation per cell of the backbone's last "
                                      "stage, each cell's own share of the fake score; gradcam: Grad-CAM, "
                                      "channel-mean gradients x activations, smoother but it also lights regions "
                                      "the model does not pool")
    report: bool = option(True, flag="--no-report", group="output", help="skip report.html and index.html")

    def __post_init__(self) -> None:
        if self.heatmap_method not in CAM_METHODS:
            raise ValueError(f"unknown CAM method {self.heatmap_method!r}; choose one of {', '.join(CAM_METHODS)}")


@dataclass
class LiveOptions:
    """How the live loop paces, drops, smooths and stops."""

    smooth: float = option(0.3, type=probability, group="verdict",
                           help="weight of the newest score in each face's moving average, the verdict shown "
                                "(1: no smoothing; default: %(default)s)")
    realtime: bool = option(True, negatable=True, group="source and output",
                            help="play a file source at its real-time pace (default) or as fast as it decodes")
    max_frames: int | None = option(None, type=positive_int, metavar="N", group="source and output",
                                    help="stop after N frames")
    duration_s: float | None = option(None, flag="--duration", type=positive_float, metavar="S",
                                      group="source and output", help="stop after S seconds")
    retries: int = option(3, type=non_negative_int, group="source and output",
                          help="reconnection attempts when a network stream dies, with doubling back-off "
                               "(default: %(default)s)")
    timeout_s: float = option(10.0, flag="--timeout", type=positive_float, metavar="TIMEOUT", group="source and output",
                              help="seconds to wait for a network stream to open or deliver (default: %(default)s)")
    drop: bool = option(True, cli=False)  # analyse the newest frame only; False: every frame in order (offline)
    retry_delay_s: float = option(0.5, cli=False)  # first back-off; doubles per attempt
    rate_window_s: float = option(2.0, cli=False)  # frame and analysis rates are measured over this sliding window
    follow_motion: bool = option(True, cli=False)  # shift the boxes of frames not analysed by their track's velocity

    def __post_init__(self) -> None:
        if not 0 < self.smooth <= 1:
            raise ValueError(f"smooth must be in (0, 1], got {self.smooth}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")


@dataclass
class RunOptions:
    """How a scan run goes: in this process or spread over a Ray cluster, and whether it continues an earlier run
    from what its output folder already holds."""

    cluster: str | None = option(None, type=cluster_address, metavar="ray|ray://HOST:PORT|auto", group="run",
                                 help="scan the inputs on Ray workers that each hold one model, instead of in this "
                                      "process: 'ray' starts a Ray instance on this machine; 'auto' joins the "
                                      "cluster this machine belongs to (ray start); ray://HOST:PORT connects to a "
                                      "cluster's Ray client server. The inputs and --out must be on a file system "
                                      "every node sees at the same path. Needs pip install 'fakescope[cluster]'")
    cluster_workers: int | None = option(None, type=positive_int, metavar="N", group="run",
                                         help="Ray workers (default: one per CPU of the cluster, or one per GPU "
                                              "with --device cuda); each takes an equal share of the CPUs as its "
                                              "threads")
    resume: bool = option(False, group="run",
                          help="continue an interrupted run: inputs whose folder in --out holds a finished scan "
                               "of the same input with the same options and weights are not scanned again (their "
                               "summaries go into the report); the others are, and leftovers of interrupted "
                               "writes are removed")

    def __post_init__(self) -> None:
        if self.cluster is not None:
            try:
                cluster_address(self.cluster)
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"cluster: {error}") from None


def options_record(options: Any) -> dict[str, Any]:
    """The fields of an options dataclass as JSON values (a frame selection as its description): what a summary
    records of how it was made, and what ``fakescope scan --resume`` compares."""
    record: dict[str, Any] = {}
    for item in dataclasses.fields(options):
        value = getattr(options, item.name)
        if isinstance(value, FrameSelection):
            value = value.describe()
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            value = str(value)
        record[item.name] = value
    return record


def split_values(values: dict[str, Any], *concerns: type) -> list[dict[str, Any]]:
    """Route flat ``name=value`` pairs to the concern whose field has that name (one dict per concern, in order);
    TypeError for a name that no concern has."""
    routed: list[dict[str, Any]] = [{} for _ in concerns]
    for name, value in values.items():
        for index, concern in enumerate(concerns):
            if name in {f.name for f in dataclasses.fields(concern)}:
                routed[index][name] = value
                break
        else:
            known = sorted(f.name for concern in concerns for f in dataclasses.fields(concern))
            raise TypeError(f"unknown option {name!r}; known options: {', '.join(known)}")
    return routed
