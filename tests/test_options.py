"""Options are defined once: the command line is built from the option dataclasses, so defaults and choices agree."""
from __future__ import annotations

import dataclasses

import pytest

from fakescope.cli.evaluate import EVALUATION_FIELDS, EVALUATION_OPTIONS
from fakescope.cli.live import LIVE_ANALYSIS_FIELDS, live_options
from fakescope.cli.main import build_parser
from fakescope.cli.option_fields import flag_of
from fakescope.cli.scan import scan_options
from fakescope.options import (
    CAM_METHODS,
    LIVE_FACE_OPTIONS,
    PRECISIONS,
    AnalysisOptions,
    FaceOptions,
    LiveOptions,
    OutputOptions,
    RunOptions,
)
from fakescope.results import AGGREGATIONS
from fakescope.video import FrameSelection


def _parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_scan_defaults_are_the_dataclass_defaults():
    faces, analysis, outputs = scan_options(_parse("scan", "video.mp4"))
    assert (faces, analysis, outputs) == (FaceOptions(), AnalysisOptions(), OutputOptions())


def test_scan_run_options_reach_their_fields():
    from fakescope.cli.option_fields import options_from_args

    assert options_from_args(RunOptions, _parse("scan", "v.mp4")) == RunOptions()
    args = _parse("scan", "v.mp4", "--cluster", "ray://head:10001", "--cluster-workers", "3", "--resume")
    assert options_from_args(RunOptions, args) == RunOptions(cluster="ray://head:10001", cluster_workers=3, resume=True)
    with pytest.raises(ValueError, match="expected ray, auto"):
        RunOptions(cluster="spark")


def test_live_defaults_are_the_dataclass_defaults():
    faces, analysis, live = live_options(_parse("live", "--source", "0"))
    assert faces == LIVE_FACE_OPTIONS and faces.detect_size == 480
    assert analysis == AnalysisOptions() and live == LiveOptions()


def test_evaluate_defaults_are_its_own_options():
    from fakescope.cli.option_fields import options_from_args

    args = _parse("evaluate", "--data", "folder:x", "--out", "o")
    assert options_from_args(AnalysisOptions, args, EVALUATION_OPTIONS, EVALUATION_FIELDS) == EVALUATION_OPTIONS
    assert EVALUATION_OPTIONS.selection == FrameSelection("count", 32)


def test_every_scan_option_reaches_its_field():
    faces, analysis, outputs = scan_options(_parse(
        "scan", "v.mp4", "--margin", "1.5", "--detect-size", "320", "--detect-score", "0.8", "--min-face", "30",
        "--precision", "bf16", "--batch-size", "4", "--window", "16", "--fps", "2", "--threshold", "0.4",
        "--aggregate", "mean_frames", "--no-video", "--no-plot", "--heatmap", "--heatmap-method", "gradcam",
        "--no-report"))
    assert faces == FaceOptions(margin=1.5, detect_size=320, detect_score=0.8, min_face=30)
    assert analysis == AnalysisOptions(precision="bf16", batch_size=4, window=16, selection=FrameSelection("fps", 2.0),
                                       threshold=0.4, aggregation="mean_frames")
    assert outputs == OutputOptions(annotate=False, plot=False, heatmap=True, heatmap_method="gradcam", report=False)


def test_every_live_option_reaches_its_field():
    _, analysis, live = live_options(_parse(
        "live", "--source", "0", "--window", "4", "--threshold", "0.7", "--smooth", "1", "--no-realtime",
        "--max-frames", "9", "--duration", "2.5", "--retries", "0", "--timeout", "3"))
    assert analysis == AnalysisOptions(window=4, threshold=0.7)
    assert live == LiveOptions(smooth=1.0, realtime=False, max_frames=9, duration_s=2.5, retries=0, timeout_s=3.0)


def test_choices_come_from_the_options():
    actions = {action.dest: action for action in build_parser()._subparsers._group_actions[0].choices["scan"]._actions}
    assert actions["precision"].choices == list(PRECISIONS)
    assert actions["heatmap_method"].choices == list(CAM_METHODS)
    assert actions["aggregation"].choices == sorted(AGGREGATIONS)


@pytest.mark.parametrize("concern", [FaceOptions, AnalysisOptions, OutputOptions, LiveOptions, RunOptions])
def test_every_command_line_field_is_documented(concern):
    for field in dataclasses.fields(concern):
        if field.metadata.get("cli") and field.metadata.get("kind") != "selection":
            assert field.metadata["help"], f"{concern.__name__}.{field.name} has no help"
            assert flag_of(field).startswith("--")


def test_live_analysis_fields_exist():
    names = {field.name for field in dataclasses.fields(AnalysisOptions)}
    assert set(LIVE_ANALYSIS_FIELDS) <= names and set(EVALUATION_FIELDS) <= names
