"""A run's parts that make it resumable and keep its memory flat: input folders written atomically, summaries
spooled to disk, and ``fakescope scan --resume`` after an interrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakescope.atomic import AtomicFolder, remove_leftovers, remove_partial_folders
from fakescope.cli.main import main
from fakescope.outputs import runs as runs_module
from fakescope.outputs.tables import SummarySpool, dump_json_list
from run_helpers import RUN_ORDER, hidden_entries, make_run_inputs, report_inputs, run_files

REPO = Path(__file__).resolve().parents[1]


def test_an_atomic_folder_appears_whole_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "clip.mp4"
    target.mkdir()
    (target / "heatmap.mp4").write_text("from an older scan with --heatmap")
    folder = AtomicFolder(target)
    folder.create()
    (folder.temp_path / "summary.json").write_text("{}")
    assert folder.temp_path.name.startswith(".clip.mp4.") and target.is_dir()
    assert sorted(p.name for p in target.iterdir()) == ["heatmap.mp4"]  # nothing new shows before the commit
    folder.commit()
    assert sorted(p.name for p in target.iterdir()) == ["summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_an_atomic_scan_interrupted_half_way_leaves_no_folder(tiny_weights, tmp_path, monkeypatch):
    from clips import make_image
    from fakescope.analysis import Scanner
    from fakescope.outputs import saving, scan_to_folder

    image = make_image(tmp_path / "face.jpg", size=200)
    scanner = Scanner.load(tiny_weights, device="cpu", allow_untrained=True)
    write_tables = saving.OutputWriter._write_tables_and_trend

    def interrupted(self, *args):
        write_tables(self, *args)
        raise KeyboardInterrupt  # Ctrl-C once predictions.csv is written

    monkeypatch.setattr(saving.OutputWriter, "_write_tables_and_trend", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scan_to_folder(scanner, image, tmp_path / "out" / "face.jpg", atomic=True)
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()
    result = scan_to_folder(scanner, image, tmp_path / "out" / "face.jpg", atomic=True)
    assert result.outputs["predictions"] == str(tmp_path / "out" / "face.jpg" / "predictions.csv")
    assert json.loads((tmp_path / "out" / "face.jpg" / "summary.json").read_text())["outputs"]["annotated"] == \
        str(tmp_path / "out" / "face.jpg" / "annotated.jpg")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.jpg"]


def test_an_atomic_folder_of_the_longest_name_a_file_system_takes(tmp_path):
    target = tmp_path / ("n" * 251 + ".mp4")
    target.mkdir()
    folder = AtomicFolder(target)
    folder.create()
    (folder.temp_path / "summary.json").write_text("{}")
    assert remove_partial_folders(tmp_path / "other.mp4") == 0
    folder.commit()
    assert [p.name for p in target.iterdir()] == ["summary.json"]
    again = AtomicFolder(target)
    again.create()
    assert remove_partial_folders(target) == 1 and sorted(tmp_path.iterdir()) == [target]


def test_leftovers_of_interrupted_writes_are_found_and_only_they(tmp_path):
    dead = AtomicFolder(tmp_path / "a" / "clip.mp4")
    dead.create()
    (dead.temp_path / "predictions.csv").write_text("half")
    other = AtomicFolder(tmp_path / "a" / "other.mp4")
    other.create()
    (tmp_path / "a" / ".report.csv.0123abcd.partial.csv").write_text("half")
    (tmp_path / "a" / ".hidden-by-the-user").write_text("keep")
    (tmp_path / "a" / "clip.mp4.0123abcd.partial").mkdir()  # not hidden: not ours
    assert remove_partial_folders(tmp_path / "a" / "clip.mp4") == 1
    assert other.temp_path.is_dir()
    assert remove_leftovers(tmp_path) == 2
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".hidden-by-the-user", "clip.mp4.0123abcd.partial"]


def test_the_spool_gives_summaries_back_in_input_order(tmp_path):
    summaries = [{"input": f"clip{index}.mp4", "verdict": "real", "name": "写真\udcff"} for index in range(5)]
    with SummarySpool() as spool:
        for index in (3, 0, 4, 1, 2):
            spool.add(index, summaries[index])
        assert len(spool) == 5
        assert list(spool) == summaries == list(spool)  # read as often as the report needs
        with pytest.raises(ValueError, match="already"):
            spool.add(2, summaries[2])
        with open(tmp_path / "list.json", "w", encoding="utf-8", errors="surrogatepass") as handle:
            dump_json_list(spool, handle)
    assert (tmp_path / "list.json").read_text(encoding="utf-8", errors="surrogatepass") == \
        json.dumps(summaries, indent=2, ensure_ascii=False) + "\n"


def _scan(weights: Path, out: Path, *paths: Path, extra: tuple[str, ...] = ()) -> int:
    return main(["scan", *map(str, paths), "--weights", str(weights), "--allow-untrained", "--out", str(out),
                 "--quiet", "--frames", "4", *extra])


@pytest.fixture
def scanned_inputs(monkeypatch) -> list[str]:
    """The inputs the run scans (not those it keeps), in order."""
    scanned: list[str] = []
    original = runs_module.scan_to_folder

    def recording(scanner, path, *args, **kwargs):
        scanned.append(Path(path).name)
        return original(scanner, path, *args, **kwargs)

    monkeypatch.setattr(runs_module, "scan_to_folder", recording)
    return scanned


@pytest.mark.slow  # a subprocess scan killed half-way, then two scans
def test_resume_after_a_killed_run_scans_what_is_missing_and_reports_as_if_never_stopped(
        tiny_weights, tmp_path, scanned_inputs):
    inputs = make_run_inputs(tmp_path / "inputs", long_frames=150)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fakescope.cli.main", "scan", str(inputs), "--weights", str(tiny_weights),
               "--allow-untrained", "--out", str(out), "--quiet", "--frames", "4"]
    run = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Killed while it writes the folder of the second input (its predictions are in, the rest not yet).
    deadline = time.monotonic() + 120
    while not list((out / "inputs").glob(".b-long.mp4.*.partial/predictions.csv")) and run.poll() is None:
        assert time.monotonic() < deadline, "the run never reached b-long.mp4"
        time.sleep(0.002)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, run.stderr.read().decode()[-2000:]
    assert (out / "inputs" / "a-short.mp4" / "summary.json").is_file()
    assert not (out / "inputs" / "b-long.mp4").exists() and not (out / "report.json").exists()
    assert hidden_entries(out)  # the half-written folder of b-long.mp4
    kept_summary = (out / "inputs" / "a-short.mp4" / "summary.json").stat()

    assert _scan(tiny_weights, out, inputs, extra=("--resume",)) == 0
    assert scanned_inputs == ["b-long.mp4", "face.jpg"]
    assert (out / "inputs" / "a-short.mp4" / "summary.json").stat().st_mtime_ns == kept_summary.st_mtime_ns
    assert hidden_entries(out) == []

    reference = tmp_path / "reference"
    assert _scan(tiny_weights, reference, inputs) == 0
    resumed, uninterrupted = run_files(out), run_files(reference)
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert resumed[name] == uninterrupted[name], name


def test_resume_scans_again_what_was_made_with_other_options_or_failed(tiny_weights, tmp_path, scanned_inputs,
                                                                     capsys):
    inputs = make_run_inputs(tmp_path / "inputs", long_frames=12)
    out = tmp_path / "out"
    assert _scan(tiny_weights, out, inputs, extra=("--no-video", "--no-plot")) == 0
    summary_path = out / "inputs" / "c-photos" / "face.jpg" / "summary.json"
    failed = json.loads(summary_path.read_text())
    failed.update(verdict="error", reason="No space left on device")
    summary_path.write_text(json.dumps(failed))
    scanned_inputs.clear()
    capsys.readouterr()

    assert _scan(tiny_weights, out, inputs, extra=("--no-video", "--no-plot", "--resume")) == 0
    assert scanned_inputs == ["face.jpg"]  # the failure is tried again, the rest kept
    assert "2 kept from the earlier run" in capsys.readouterr().out
    scanned_inputs.clear()

    # Other options: every input is scanned again, with the new options, and the report says so.
    assert _scan(tiny_weights, out, inputs, extra=("--no-video", "--resume")) == 0
    assert scanned_inputs == ["a-short.mp4", "b-long.mp4", "face.jpg"]
    report = json.loads((out / "report.json").read_text())
    assert [r["options"]["outputs"]["plot"] for r in report["results"] if r["verdict"] != "skipped"] == [True] * 3
    assert (out / "inputs" / "b-long.mp4" / "trend.png").is_file()


def test_without_resume_every_input_is_scanned_again(tiny_weights, tmp_path, scanned_inputs):
    inputs = make_run_inputs(tmp_path / "inputs", long_frames=12)
    out = tmp_path / "out"
    assert _scan(tiny_weights, out, inputs, extra=("--no-video",)) == 0
    first = run_files(out)
    (out / "inputs" / "a-short.mp4" / "stale.txt").write_text("left by someone")
    scanned_inputs.clear()
    assert _scan(tiny_weights, out, inputs, extra=("--no-video",)) == 0
    assert scanned_inputs == ["a-short.mp4", "b-long.mp4", "face.jpg"]
    # Each input's folder is replaced as a whole: the same files as the first time, nothing stale.
    assert run_files(out) == first
    assert report_inputs(out) == [str(inputs / name) for name in RUN_ORDER]
