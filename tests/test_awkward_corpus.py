"""A generated corpus of more than 40 kinds of awkward input (tests/awkward.py), each scanned beside a good video.

Each kind is checked for its exit status, a clear reason in report.json and on screen, a clean terminal (no
traceback, no decoder or library chatter) and the good input beside it still scanned; then the whole corpus goes
through one real ``fakescope`` process with every output on, its standard error captured.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from awkward import KINDS, Kind, build_kind
from clips import make_clip
from fakescope.cli.main import main
from fakescope.names import printable

NOISE = re.compile(r"Traceback|Premature end|libpng|Corrupt JPEG|\[ERROR|\[h264|\[mpeg|\[mov|Glyph|Warning:|"
                   r"UserWarning|RuntimeWarning|Invalid NAL|moov atom|\r")


def test_the_corpus_has_at_least_40_kinds():
    assert len(KINDS) >= 40 and len({kind.name for kind in KINDS}) == len(KINDS)
    assert {kind.outcome for kind in KINDS} == {"scanned", "error", "skipped"}


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("good") / "good.mp4", n_frames=6, size=(320, 240))


# fakescope's own progress lines off a terminal (one every 30 s at most, so they appear only on a slow machine).
PROGRESS_LINE = re.compile(r".+: \d+(/\d+)? (input|frame)s?( \(\d+%\))?")


def _clean(stderr: str) -> list[str]:
    """Lines on standard error other than fakescope's own untrained-model warning and progress lines (must be
    none)."""
    return [line for line in stderr.splitlines() if line and not line.startswith("WARNING: untrained model")
            and not PROGRESS_LINE.fullmatch(line)]


def _check_result(kind: Kind, result: dict) -> None:
    if kind.outcome == "scanned":
        assert result["verdict"] in kind.verdicts, result
        if kind.warning:
            assert any(re.search(kind.warning, warning) for warning in result["warnings"]), result["warnings"]
    else:
        assert result["verdict"] == ("error" if kind.outcome == "error" else "skipped"), result
        assert result["reason"] and re.search(kind.reason, result["reason"]), result["reason"]


@pytest.mark.slow  # 61 kinds, each a scan beside a good video
@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
def test_each_kind_beside_a_good_video(kind: Kind, tiny_weights: Path, good_clip: Path, tmp_path: Path, capfd):
    folder = tmp_path / "in"
    made = build_kind(kind, folder)
    os.link(good_clip, folder / "zz_good.mp4")
    capfd.readouterr()
    code = main(["scan", str(folder), "--weights", str(tiny_weights), "--allow-untrained", "--out",
                 str(tmp_path / "out"), "--no-video", "--no-report", "--no-plot"])
    captured = capfd.readouterr()
    assert code == (1 if kind.outcome == "error" else 0), captured.out
    assert _clean(captured.err) == [] and not NOISE.search(captured.err), captured.err

    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    by_input = {result["input"]: result for result in report["results"]}
    assert by_input[str(folder / "zz_good.mp4")]["verdict"] in ("real", "fake")  # the good one is still scanned
    result = by_input[str(made)]
    _check_result(kind, result)

    # On screen: one line for the input, its name escaped, with the verdict or the reason.
    lines = [line for line in captured.out.splitlines() if line.startswith(printable(str(made)) + ": ")]
    assert len(lines) == 1, captured.out
    if kind.outcome == "error":
        assert f": ERROR: {printable(result['reason'])}" in lines[0]
    elif kind.outcome == "skipped":
        assert f": SKIPPED ({printable(result['reason'])})" in lines[0]
    else:
        assert f": {result['verdict'].upper().replace('_', ' ')}" in lines[0]
    assert len(captured.out.splitlines()) == len(report["results"]) + 1  # one line per input, then the summary


@pytest.mark.slow
def test_the_whole_corpus_in_one_real_process(tiny_weights: Path, good_clip: Path, tmp_path: Path):
    corpus = tmp_path / "corpus"
    made = {kind.name: build_kind(kind, corpus / kind.name) for kind in KINDS}
    script = Path(sys.executable).with_name("fakescope")
    run = subprocess.run([str(script), "scan", str(corpus), str(good_clip), "--weights", str(tiny_weights),
                          "--allow-untrained", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, errors="backslashreplace",
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 1  # some kinds are errors; every other input is still scanned
    assert _clean(run.stderr) == [] and not NOISE.search(run.stderr), run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    by_input = {result["input"]: result for result in report["results"]}
    for kind in KINDS:
        _check_result(kind, by_input[str(made[kind.name])])
        assert printable(str(made[kind.name])) + ": " in run.stdout
    assert by_input[str(good_clip)]["verdict"] in ("real", "fake")
    expected_failures = sum(kind.outcome == "error" for kind in KINDS)
    assert report["failed"] == expected_failures
    assert report["skipped"] == sum(kind.outcome == "skipped" for kind in KINDS)
    # Every scanned input has its complete set of files, and nothing half-written was left anywhere.
    for result in report["results"]:
        if result["verdict"] in ("real", "fake", "no_face"):
            assert Path(result["outputs"]["summary"]).is_file() and Path(result["outputs"]["report"]).is_file()
    assert not [path for path in (tmp_path / "out").rglob("*") if ".partial" in path.name]
    assert (tmp_path / "out" / "index.html").is_file()
