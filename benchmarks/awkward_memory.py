"""Memory stays bounded on large inputs: a 4K video, a 20-minute video and a directory of 10,000 small images.

Each case is generated (the videos frame by frame, never held in memory), then scanned by a real ``fakescope scan``
process with the tiny test model; the peak resident memory of that process is compared with the same scan of a
short input (the same resolution, or 1,000 images). Run by hand (minutes on two cores):

    python benchmarks/awkward_memory.py [uhd] [long] [images] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from clips import make_image, render_frame  # noqa: E402


def write_clip(path: Path, n_frames: int, size: tuple[int, int], fps: float = 25.0) -> Path:
    """A clip of the test face, encoded frame by frame as it is rendered (memory independent of its length)."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        cycle = min(n_frames, 250)  # the face's motion repeats every 10 s, so rendering costs little
        for index in range(n_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(index % cycle, cycle, size), format="bgr24")
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def tiny_weights(folder: Path) -> Path:
    import torch

    from fakescope.models import CheckpointMeta, create_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(folder / "tiny.safetensors", create_model("tiny_lstm"), CheckpointMeta(trained=False))


PROBE = """
import sys, threading, time
from fakescope.cli.main import main

samples = []

def sample():
    while True:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
        samples.append((time.monotonic(), kb))
        time.sleep(0.1)

threading.Thread(target=sample, daemon=True).start()
status = main(sys.argv[1:])
start, end = samples[0][0], samples[-1][0]
# Memory while the inputs stream through: the second half of the run (after imports, model and first inputs).
steady = [kb for moment, kb in samples if moment >= start + (end - start) / 2]
print("RSS_KB", max(steady), file=sys.stderr)
sys.exit(status)
"""


def scan_peak_mb(weights: Path, out: Path, *args: str) -> tuple[float, float, int]:
    """Run ``fakescope scan`` in a child process; (peak resident MB over the second half of its run, seconds,
    exit status). The second half: the import and model-loading peak would hide what the inputs cost."""
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", PROBE, "scan", *args, "--weights", str(weights),
                          "--allow-untrained", "--out", str(out), "--quiet"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    seconds = time.monotonic() - started
    peak = [line for line in run.stderr.splitlines() if line.startswith("RSS_KB")]
    if not peak:
        raise SystemExit(f"scan failed:\n{run.stderr[-2000:]}")
    return int(peak[0].split()[1]) / 1024, seconds, run.returncode


def compare(name: str, short: tuple[float, float, int], long: tuple[float, float, int]) -> None:
    growth = (long[0] - short[0]) / short[0] * 100
    print(f"{name}: short {short[0]:.0f} MB ({short[1]:.0f} s, exit {short[2]}), "
          f"long {long[0]:.0f} MB ({long[1]:.0f} s, exit {long[2]}): {growth:+.1f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", default=["uhd", "long", "images"], choices=["uhd", "long", "images"])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="fakescope-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    weights = tiny_weights(work)
    print(f"working in {work}", flush=True)

    if "uhd" in args.cases:
        # 40 frames already fill the decoding and encoding queues, so the comparison measures growth with length.
        short = write_clip(work / "uhd-short.mp4", 40, (3840, 2160))
        long = write_clip(work / "uhd-long.mp4", 160, (3840, 2160))
        compare("4K (3840x2160), 40 vs 160 frames, every frame analysed and rendered",
                scan_peak_mb(weights, work / "out-uhd-short", str(short)),
                scan_peak_mb(weights, work / "out-uhd-long", str(long)))

    if "long" in args.cases:
        short = write_clip(work / "long-short.mp4", 25 * 60, (320, 240))
        long = write_clip(work / "long-20min.mp4", 25 * 60 * 20, (320, 240))
        compare("320x240 at 25 fps, 1 vs 20 minutes, 1 frame a second analysed, every frame rendered",
                scan_peak_mb(weights, work / "out-long-short", str(short), "--fps", "1"),
                scan_peak_mb(weights, work / "out-long-20", str(long), "--fps", "1"))

    if "images" in args.cases:
        jpeg = make_image(work / "face.jpg", size=64).read_bytes()
        for total in (1_000, 10_000):
            folder = work / f"images-{total}"
            for index in range(total):
                sub = folder / f"day{index // 100:03d}"
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"img{index % 100:03d}.jpg").write_bytes(jpeg)
        compare("directory of small images, 1,000 vs 10,000 (no annotated image, plot or html)",
                scan_peak_mb(weights, work / "out-1000", str(work / "images-1000"), "--no-video", "--no-report"),
                scan_peak_mb(weights, work / "out-10000", str(work / "images-10000"), "--no-video", "--no-report"))
        report = json.loads((work / "out-10000" / "report.json").read_text())
        print(f"  10,000 images: {report['inputs']} inputs in the report, {report['scanned']} scanned", flush=True)
    if args.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
