"""Do benign edits flip the verdict on a real video? Flip rate over held-out real videos (run by hand).

    .venv/bin/python benchmarks/benign_edits.py [--weights CKPT] [--max-videos 16] [--frames 16] [VIDEO ...]

Each real video is scanned as it is and after each edit a newsroom's copy may have gone through: re-encoding
(H.264 CRF 18 and 32), downscaling to 360p, greyscale, a rotation flag in the container (the pixels stored turned
by 90 degrees, the player told to turn them back), a 2-second excerpt, and a single frame saved as a JPEG. Prints
p_fake and verdict of every copy, then per edit how many copies changed verdict against their original ("flips")
and how many real copies in all were called fake. Default videos: the held-out test half of the corpus's real
talking-head and GRID identities (`runs/corpus`, see scripts/corpus_recipe.py), which no recipe trains on.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "runs/corpus"


def held_out_test_videos(corpus: Path) -> list[Path]:
    """Real videos of the identities that only measure (never choose) the recipe's threshold."""
    from held_out_scan import FALSE_ALARM_SETS, held_out_videos

    from fakescope.data.corpus import is_calibration_identity

    return [item.path for item in held_out_videos(corpus, FALSE_ALARM_SETS)
            if item.label == 0 and item.kind == "video" and not is_calibration_identity(item.group)]


def _frames(path: Path) -> Iterator[tuple[np.ndarray, Fraction]]:
    """RGB frames of a video with their rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24"), rate


def _write(path: Path, frames: Iterator[np.ndarray], rate: Fraction, crf: int,
           display_rotation: int | None = None) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.height, stream.width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
                if display_rotation is not None:  # degrees counter-clockwise that players turn the picture
                    stream.set_display_rotation(display_rotation)
            image = np.ascontiguousarray(image[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


def _rgb_frames(src: Path, transform: Callable[[np.ndarray], np.ndarray] | None = None,
                seconds: float | None = None) -> tuple[Iterator[np.ndarray], Fraction]:
    """The video's RGB frames (the first ``seconds`` of them, each through ``transform``) and its frame rate."""
    frames = _frames(src)
    first, rate = next(frames)
    images: Iterator[np.ndarray] = itertools.chain([first], (image for image, _ in frames))
    if seconds is not None:
        images = itertools.islice(images, math.ceil(seconds * rate))
    return (map(transform, images) if transform else images), rate


def _rotation_flag(src: Path, dst: Path) -> Path:
    """The pixels stored turned a quarter clockwise, and a display-matrix flag telling players to turn them back, as
    phones store portrait video."""
    frames, rate = _rgb_frames(src, lambda f: np.ascontiguousarray(np.rot90(f, -1)))
    return _write(dst, frames, rate, crf=18, display_rotation=90)


def _to_360p(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if height <= 360:
        return image
    scale = 360 / height
    return cv2.resize(image, (round(width * scale), 360), interpolation=cv2.INTER_AREA)


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def make_edits(src: Path, work: Path) -> dict[str, Path]:
    """Every edited copy of ``src`` (an edit that the local FFmpeg cannot make is left out, with a message)."""
    edits: dict[str, Path] = {}
    recipes: dict[str, Callable[[Path], Path]] = {
        "crf18": lambda dst: _write(dst, *_rgb_frames(src), crf=18),
        "crf32": lambda dst: _write(dst, *_rgb_frames(src), crf=32),
        "360p": lambda dst: _write(dst, *_rgb_frames(src, _to_360p), crf=23),
        "greyscale": lambda dst: _write(dst, *_rgb_frames(src, _grey), crf=23),
        "rotation-flag": lambda dst: _rotation_flag(src, dst),
        "excerpt-2s": lambda dst: _write(dst, *_rgb_frames(src, seconds=2.0), crf=23),
    }
    for name, make in recipes.items():
        try:
            edits[name] = make(work / f"{name}.mp4")
        except Exception as error:  # noqa: BLE001 - a missing encoder leaves one edit out, not the benchmark
            print(f"  {src.name}: edit {name} not made ({type(error).__name__}: {error})", file=sys.stderr)
    frames, rate = _rgb_frames(src)
    for still in itertools.islice(frames, int(rate)):  # the last frame before 1 s (of a shorter video, its last)
        pass
    cv2.imwrite(str(work / "still.jpg"), cv2.cvtColor(still, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    edits["still-jpeg"] = work / "still.jpg"
    return edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--weights", type=Path, help="checkpoint (default: the shipped weights)")
    parser.add_argument("--frames", type=int, default=16, help="frames analysed per video (scan --frames)")
    parser.add_argument("--max-videos", type=int, default=16, help="at most this many default videos, spread")
    parser.add_argument("--json", type=Path, help="write every score here")
    args = parser.parse_args()

    from fakescope.analysis import Scanner
    from fakescope.video import FrameSelection

    videos = args.videos
    if not videos:
        videos = held_out_test_videos(CORPUS)
        if not videos:
            sys.exit(f"no default videos: build the corpus into {CORPUS} first (README, 'Training data')")
        if len(videos) > args.max_videos:
            videos = [videos[i] for i in np.linspace(0, len(videos) - 1, args.max_videos).round().astype(int)]
    detector = Scanner.load(args.weights, device="cpu", selection=FrameSelection.from_options(frames=args.frames))
    print(f"weights {detector.meta.path} (threshold {detector.threshold:.3f}); {len(videos)} real videos, "
          f"--frames {args.frames}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, video in enumerate(videos):
            work = Path(tmp) / str(number)
            work.mkdir()
            copies = {"original": video, **make_edits(video, work)}
            scores = {}
            for name, path in copies.items():
                result = detector.scan(path)
                scores[name] = {"verdict": result.verdict, "p_fake": result.p_fake, "reason": result.reason}
            rows.append({"video": str(video), "scores": scores})
            line = "  ".join(f"{name} {s['p_fake']:.2f}{'F' if s['verdict'] == 'fake' else ''}"
                             if s["p_fake"] is not None else f"{name} {s['verdict']}"
                             for name, s in scores.items())
            print(f"{video.name}: {line}", flush=True)
    edit_names = sorted({name for row in rows for name in row["scores"]} - {"original"})
    print(f"\n{'edit':<14} {'flips':>7} {'called fake':>12}")
    total_flips = total = 0
    for name in ["original", *edit_names]:
        pairs = [(row["scores"]["original"], row["scores"][name]) for row in rows if name in row["scores"]]
        judged = [(a, b) for a, b in pairs if a["verdict"] in ("real", "fake") and b["verdict"] in ("real", "fake")]
        flips = sum(a["verdict"] != b["verdict"] for a, b in judged)
        fake = sum(b["verdict"] == "fake" for _, b in judged)
        if name != "original":
            total_flips += flips
            total += len(judged)
        print(f"{name:<14} {flips:>3}/{len(judged):<3} {fake:>8}/{len(judged):<3}")
    print(f"\nflip rate over all edits: {total_flips}/{total} = {total_flips / max(total, 1):.1%}")
    if args.json:
        args.json.write_text(json.dumps({"weights": detector.meta.path, "threshold": detector.threshold,
                                         "frames": args.frames, "videos": rows}, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    main()
