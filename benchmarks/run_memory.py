"""What a scan run holds in memory per input: Python's heap (tracemalloc) when the run has scanned a directory of N
small images and is about to write its report, for N and 10 N (run by hand; prints the figures).

    .venv/bin/python benchmarks/run_memory.py [--count 200] [--src ../other-checkout/src]

Each count is scanned in a fresh process with the tiny test model (``--no-video --no-plot --no-report``, so
little else is allocated); the growth from N to 10 N inputs, divided by 9 N, is what each input costs the run.
``--src`` measures another checkout the same way (its ``fakescope scan`` must have ``_write_run_files``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from clips import make_image  # noqa: E402

PROBE = """
import gc, sys, tracemalloc
import fakescope.cli.scan as scan
held = []
write = scan._write_run_files

def measured(*args, **kwargs):
    gc.collect()  # what the run holds, not garbage waiting for the collector
    held.append(tracemalloc.get_traced_memory()[0])
    return write(*args, **kwargs)

scan._write_run_files = measured
from fakescope.cli.main import main
import torch  # loaded before tracing starts, like the model below: only the run's own allocations are traced
tracemalloc.start()
status = main(sys.argv[1:])
print("HELD_BYTES", held[0], file=sys.stderr)
sys.exit(status)
"""


def held_bytes(src: Path, weights: Path, folder: Path, out: Path) -> int:
    run = subprocess.run([sys.executable, "-c", PROBE, "scan", str(folder), "--weights", str(weights),
                          "--allow-untrained", "--out", str(out), "--quiet", "--no-video", "--no-plot",
                          "--no-report"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    lines = [line for line in run.stderr.splitlines() if line.startswith("HELD_BYTES")]
    if not lines:
        raise SystemExit(f"scan failed:\n{run.stderr[-2000:]}")
    return int(lines[0].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="N (default: %(default)s)")
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the fakescope source to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fakescope-run-memory-") as work:
        work_dir = Path(work)
        sys.path.insert(0, str(args.src))
        import torch

        from fakescope.models import CheckpointMeta, create_model, save_checkpoint

        torch.manual_seed(0)
        weights = save_checkpoint(work_dir / "tiny.safetensors", create_model("tiny_lstm"),
                                  CheckpointMeta(trained=False))
        jpeg = make_image(work_dir / "face.jpg", size=64).read_bytes()
        held = {}
        for count in (args.count, 10 * args.count):
            folder = work_dir / f"images-{count}"
            for index in range(count):
                sub = folder / f"day{index // 100:03d}"
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"img{index % 100:03d}.jpg").write_bytes(jpeg)
            held[count] = held_bytes(args.src, weights, folder, work_dir / f"out-{count}")
            print(f"{count} inputs: {held[count] / 1e6:.2f} MB of Python heap held before the report", flush=True)
        small, large = args.count, 10 * args.count
        print(f"per input: {(held[large] - held[small]) / (large - small):.0f} bytes ({args.src})")


if __name__ == "__main__":
    main()
