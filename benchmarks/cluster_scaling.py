"""Triage throughput of a directory: a local run, then 1 and 2 Ray workers on a local cluster (run by hand; prints a
table).

    .venv/bin/python benchmarks/cluster_scaling.py                  # ../shared/data/ffpp-mini, --frames 32 --no-video
    .venv/bin/python benchmarks/cluster_scaling.py DIR --workers 1 2 4 --rounds 2 --scan-args="--precision bf16"

Each run is a real ``fakescope scan DIR --frames 32 --no-video`` in a fresh process with the shipped weights; the
cluster runs add ``--cluster ray --cluster-workers N``, which start a Ray instance with all of this machine's CPUs
and share them out among the N workers (each runs as many threads as it has CPUs). Two figures per run: end to end
(process start to exit: imports, the model, Ray and its workers starting, the report) and steady (inputs finished
per second between the first and the last verdict line: what a run over a long archive approaches). With
``--rounds`` the modes alternate, so that a machine's changing load touches them alike.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
DEFAULT_DIR = SHARED / "data" / "ffpp-mini"


@dataclass
class Timing:
    mode: str
    inputs: int
    seconds: float
    steady: float | None  # inputs a second between the first and last verdict


def time_scan(folder: Path, out: Path, mode_args: list[str], scan_args: list[str]) -> tuple[int, float, float | None]:
    """Run ``fakescope scan`` in a fresh process: (inputs scanned or failed, wall seconds, steady inputs/s); files
    of the folder that are not media (listed as skipped) do not count."""
    command = [sys.executable, "-m", "fakescope.cli.main", "scan", str(folder), "--out", str(out), "--quiet",
               "--frames", "32", "--no-video", *scan_args, *mode_args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    verdicts: list[float] = []
    assert process.stdout is not None
    for line in process.stdout:
        if ": " in line and " inputs scanned" not in line and ": SKIPPED (" not in line:
            verdicts.append(time.monotonic())
    process.wait()
    seconds = time.monotonic() - started
    if process.returncode not in (0, 1):
        raise SystemExit(f"{shlex.join(command)} failed ({process.returncode}):\n{process.stderr.read()[-3000:]}")
    steady = (len(verdicts) - 1) / (verdicts[-1] - verdicts[0]) if len(verdicts) > 2 else None
    return len(verdicts), seconds, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR, help="inputs (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (default: 1 2)")
    parser.add_argument("--rounds", type=int, default=1, help="times each mode runs, alternating (default: 1)")
    parser.add_argument("--scan-args", default="", help="more fakescope scan options, e.g. \"--precision bf16\"")
    args = parser.parse_args()
    if not args.folder.is_dir():
        raise SystemExit(f"{args.folder}: no such directory (set FAKESCOPE_SHARED or pass a folder)")
    modes = [("local", [])] + [(f"ray, {n} worker{'s' if n != 1 else ''}",
                                ["--cluster", "ray", "--cluster-workers", str(n)]) for n in args.workers]
    print(f"{args.folder}: --frames 32 --no-video {args.scan_args}".rstrip() + f"; {os.cpu_count()} CPUs", flush=True)
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="fakescope-scaling-") as work:
        for round_number in range(args.rounds):
            for mode, mode_args in modes:
                out = Path(work) / f"out-{round_number}-{len(timings)}"
                inputs, seconds, steady = time_scan(args.folder, out, mode_args, shlex.split(args.scan_args))
                timings.append(Timing(mode, inputs, seconds, steady))
                steady_text = f"{steady:.2f}" if steady else "n/a"
                print(f"  {mode}: {inputs} inputs in {seconds:.1f} s ({inputs / seconds:.2f}/s end to end, "
                      f"{steady_text}/s steady)", flush=True)
    print()
    print("| mode | inputs | seconds, end to end | videos/s, end to end | videos/s, steady |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode, _ in modes:
        runs = [timing for timing in timings if timing.mode == mode]
        seconds = min(run.seconds for run in runs)
        steady = [run.steady for run in runs if run.steady]
        best_steady = f"{max(steady):.2f}" if steady else "n/a"
        print(f"| {mode} | {runs[0].inputs} | {seconds:.1f} | {runs[0].inputs / seconds:.2f} | {best_steady} |")
    if args.rounds > 1:
        print(f"(best of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
