"""The issue's speed figures, each the wall clock of a whole ``fakescope scan`` process (start-up, model load,
analysis, every output written), run by hand:

    python benchmarks/scan_throughput.py                  # both cases, default settings and the fastest ones
    python benchmarks/scan_throughput.py 1080p --rounds 3
    python benchmarks/scan_throughput.py triage --config "onnx=--runtime onnx --onnx-model model.onnx"
    python benchmarks/scan_throughput.py 1080p --config "k10=--detect-every 10" --only k10
    python benchmarks/scan_throughput.py 1080p --baseline ../main/src     # also the default settings of main

* ``1080p``: a 1920x1080 FaceForensics++ clip (the shared DeepFakeDetection actors clip, 553 frames at 24 fps, 23 s;
  ``--video`` for another), every frame analysed, all outputs written: frames per second.
* ``triage``: ``--frames 32 --no-video`` over the directory of shared ffpp-mini videos (43): videos per second.

Configurations: ``default`` (no flags) and ``fastest`` (FASTEST_FLAGS: the int8 ONNX runtime, which needs
``fakescope[onnx]``; the export goes to runs/benchmarks/ on first use), and any ``--config NAME=FLAGS``.

Each case runs every configuration, alternating between them round by round, so that a machine's changing
load falls on each alike. Per run it prints the wall clock, the process's CPU seconds (less sensitive to other load),
its peak memory and the time per stage from the summaries (``decode detect crop model write``, in ms per analysed
frame), and the load average, since this machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
FFPP = SHARED / "data/ffpp-mini"
VIDEO_1080P = FFPP / "original_sequences/actors/c23/videos/09__walking_down_street_outside_angry.mp4"
INT8_EXPORT = REPO / "runs" / "benchmarks" / "fakescope-int8.onnx"
FASTEST_FLAGS = f"--runtime onnx --onnx-model {shlex.quote(str(INT8_EXPORT))} --detect-every 10 --detect-size 320"
"""The fastest settings of this checkout: the shipped weights' int8 ONNX export (written by the benchmark on first
use, see ``int8_export``), faces detected every 10 frames on a 320-pixel copy of the frame (what that costs in faces
and verdicts: ``benchmarks/detect_size.py``)."""
CASES = {
    "1080p": "every frame, all outputs",
    "triage": "--frames 32 --no-video, a directory",
}


def int8_export(path: Path = INT8_EXPORT) -> Path:
    """The shipped weights' int8 ONNX export at ``path``, written with ``fakescope export --int8`` unless a file
    there already comes from them (its recorded weights sha256, which ``fakescope scan`` checks too)."""
    from fakescope.models.onnx_model import OnnxModelError, read_onnx_metadata
    from fakescope.weights import read_record

    if path.is_file():
        try:
            if read_onnx_metadata(path).source_sha256 == read_record()["sha256"]:
                return path
        except OnnxModelError:
            pass
    print(f"exporting the shipped weights to int8 ONNX: {path}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "fakescope.cli.main", "export", "--format", "onnx", "--int8",
                    "--out", str(path)], check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return path


def run_scan(arguments: list[str], out: Path, src: Path = REPO / "src") -> dict:
    """One ``fakescope scan`` process (of the package in ``src``): its wall clock, CPU seconds and peak RSS, and the
    summaries it wrote."""
    command = [sys.executable, "-m", "fakescope.cli.main", "scan", *arguments, "--out", str(out), "--quiet"]
    environment = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read() if process.stderr else ""
    if process.returncode not in (0, 1):
        raise SystemExit(f"scan failed ({process.returncode}): {' '.join(command)}\n{errors}")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "results": report["results"],
        "load": os.getloadavg()[0],
    }


def summarise(run: dict) -> dict:
    """Frames, inputs, stage seconds and detector runs summed over a run's inputs."""
    stages: dict[str, float] = defaultdict(float)
    frames = detector_runs = 0
    scanned = 0
    in_scans = 0.0
    for result in run["results"]:
        timing = result.get("timing") or {}
        for stage, seconds in (timing.get("stages") or {}).items():
            stages[stage] += seconds
        detector_runs += (timing.get("counts") or {}).get("detector_runs", 0)
        frames += result.get("frames_analysed") or 0
        scanned += result.get("verdict") not in ("error", "skipped")
        in_scans += timing.get("seconds") or 0.0
    return {"frames": frames, "inputs": scanned, "stages": dict(stages), "detector_runs": detector_runs,
            "outside_scans": run["wall"] - in_scans}


def describe(case: str, name: str, run: dict) -> str:
    totals = summarise(run)
    frames = max(totals["frames"], 1)
    rate = (f"{totals['frames'] / run['wall']:6.1f} frames/s" if case == "1080p"
            else f"{totals['inputs'] / run['wall']:5.2f} videos/s")
    stages = " ".join(f"{stage} {1000 * seconds / frames:.1f}" for stage, seconds in totals["stages"].items())
    return (f"  {name:<10} {rate}  wall {run['wall']:6.1f} s  cpu {run['cpu']:6.1f} s "
            f"({1000 * run['cpu'] / frames:5.1f} ms/frame)  peak {run['peak_rss_mb']:5.0f} MB  "
            f"load {run['load']:.1f}\n"
            f"  {'':<10} {totals['inputs']} inputs, {totals['frames']} frames, detector on "
            f"{totals['detector_runs']}; ms/frame: {stages}; outside the scans (start-up, model load, run "
            f"report) {totals['outside_scans']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"{' and/or '.join(CASES)} (default: both)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=FLAGS",
                        help="one more configuration: scan flags under a name (repeatable)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations")
    parser.add_argument("--fastest", default=FASTEST_FLAGS, help=f"the fastest configuration's flags "
                                                                 f"(default: {FASTEST_FLAGS!r})")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each configuration per case")
    parser.add_argument("--baseline", type=Path, metavar="SRC",
                        help="also run the default settings with another checkout's src folder (named baseline)")
    parser.add_argument("--video", type=Path, default=VIDEO_1080P, help="the 1080p case's video")
    parser.add_argument("--videos", type=Path, default=FFPP, help="the triage case's directory")
    args = parser.parse_args()
    args.cases = args.cases or list(CASES)
    unknown = [case for case in args.cases if case not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}: choose from {', '.join(CASES)}")
    configurations = {"default": [], "fastest": shlex.split(args.fastest)}
    for item in args.config:
        name, _, flags = item.partition("=")
        configurations[name] = shlex.split(flags)
    sources = {name: REPO / "src" for name in configurations}
    if args.baseline is not None:
        configurations["baseline"] = []
        sources["baseline"] = args.baseline.resolve()
    if args.only:
        configurations = {name: flags for name, flags in configurations.items() if name in args.only}
    for path in (args.video, args.videos):
        if not path.exists():
            sys.exit(f"benchmark input not found: {path} (set FAKESCOPE_SHARED)")
    if str(INT8_EXPORT) in (flag for flags in configurations.values() for flag in flags):
        int8_export()

    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} at the start")
    for name, flags in configurations.items():
        print(f"  {name}: {' '.join(flags) or '(no flags)'}" + (f" ({sources[name]})" if name == "baseline" else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            inputs = [str(args.video)] if case == "1080p" else [str(args.videos), "--frames", "32", "--no-video"]
            print(f"\n{case}: {CASES[case]} ({inputs[0]})", flush=True)
            walls: dict[str, list[float]] = defaultdict(list)
            units: dict[str, float] = {}
            for round_number in range(args.rounds):
                order = list(configurations) if round_number % 2 == 0 else list(reversed(configurations))
                for name in order:
                    out = Path(tmp) / f"{case}-{name}-{round_number}"
                    run = run_scan([*inputs, *configurations[name]], out, sources[name])
                    totals = summarise(run)
                    units[name] = totals["frames"] if case == "1080p" else totals["inputs"]
                    walls[name].append(run["wall"])
                    print(describe(case, name, run), flush=True)
            if args.rounds > 1:
                for name, seconds in walls.items():
                    median = statistics.median(seconds)
                    unit = "frames/s" if case == "1080p" else "videos/s"
                    print(f"  median {name}: {units[name] / median:.2f} {unit} ({median:.1f} s)")


if __name__ == "__main__":
    main()
