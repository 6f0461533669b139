"""Face recall of detecting every K frames and following faces in between, against detecting every frame.

    python benchmarks/face_recall.py                          # all shared ffpp-mini videos, every frame
    python benchmarks/face_recall.py --every 1 3 5 10 --limit 100 --videos 5    # a quick look
    python benchmarks/face_recall.py --frames 32 --every 5 15 30    # sparse sampling: 32 frames per video

Each video is decoded once; YuNet runs on every analysed frame (the reference, and its cost per call), and each
configuration (``--every`` K x following by template matching, or ``hold``: keep the last box) sees the same frames
with the reference detections replayed as its detector's answer, so configurations differ only in where the detector
runs and what happens in between. A reference face counts as found when a box of the configuration overlaps it with
IoU >= 0.5 (one-to-one). Printed per configuration: recall, precision, the mean IoU of found faces, the share of
frames the detector ran on and why, and the face-finding cost per frame (detector calls x their measured cost +
following). ``--cache DIR`` keeps the reference detections between runs.

``--scores N`` also scans the first N videos with the shipped model at each K (``--detect-every K``, analysing the
same frames) and prints how far the faces' p_fake and the videos' p_fake move from K=1, and how many verdicts change.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
FFPP = SHARED / "data/ffpp-mini"
MATCH_IOU = 0.5


class ReplayedDetector:
    """A detector whose answer for the current frame was computed beforehand (the reference run)."""

    def __init__(self) -> None:
        self.answer: list = []

    def detect(self, image_bgr: np.ndarray) -> list:
        return list(self.answer)


@dataclass
class Tally:
    """What one configuration found, summed over every analysed frame of every video."""

    reference_faces: int = 0
    produced_faces: int = 0
    found: int = 0
    iou_sum: float = 0.0
    frames: int = 0
    detector_runs: int = 0
    follow_seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)

    def add_frame(self, reference: list[np.ndarray], produced: list[np.ndarray]) -> None:
        from fakescope.faces import box_iou

        self.frames += 1
        self.reference_faces += len(reference)
        self.produced_faces += len(produced)
        if not reference or not produced:
            return
        iou = np.array([[box_iou(r, p) for p in produced] for r in reference])
        rows, columns = linear_sum_assignment(-iou)
        matched = iou[rows, columns]
        matched = matched[matched >= MATCH_IOU]
        self.found += len(matched)
        self.iou_sum += float(matched.sum())


def make_follower(every: int, mode: str, detector: ReplayedDetector):
    from fakescope.faces import IntervalFaceDetector

    if mode == "hold":
        class HoldBoxes(IntervalFaceDetector):
            """Keep each face's last box until the next detection (no following, no re-detection on doubt)."""

            def _follow(self, face, image_bgr):
                return face.detection

        return HoldBoxes(detector, every)
    return IntervalFaceDetector(detector, every)


def reference_detections(video: Path, cache: Path | None, selection, detector, limit: int | None):
    """(frame index, frame, detections) for each analysed frame, and the seconds the detector took."""
    from fakescope.faces import Detection
    from fakescope.video import MediaReader

    cached = None
    cache_file = None
    if cache is not None:
        key = f"{video.parent.parent.parent.name}_{video.stem}_{selection.describe()}_{limit}".replace(" ", "")
        cache_file = cache / f"{key}.npz"
        if cache_file.is_file():
            data = np.load(cache_file, allow_pickle=True)
            cached = data["detections"].tolist()
    stored, seconds = [], 0.0
    with MediaReader(video, selection=selection, decode_all=False) as reader:
        for position, frame in enumerate(reader):
            if limit is not None and position >= limit:
                break
            if cached is not None:
                detections = [Detection(box, score, marks) for box, score, marks in cached[position]]
            else:
                started = time.perf_counter()
                detections = detector.detect(frame.image)
                seconds += time.perf_counter() - started
                stored.append([(d.box, d.score, d.landmarks) for d in detections])
            yield frame, detections
    if cached is None and cache_file is not None:
        cache.mkdir(parents=True, exist_ok=True)
        array = np.empty(len(stored), dtype=object)
        array[:] = stored
        np.savez(cache_file, detections=array)
    reference_detections.seconds = seconds  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 5, 8, 12],
                        help="detector intervals K to try (frames of the video)")
    parser.add_argument("--follow", nargs="+", default=["template", "hold"], choices=["template", "hold"],
                        help="what happens between detections")
    parser.add_argument("--frames", type=int, help="analyse N evenly spaced frames per video (default: every frame)")
    parser.add_argument("--videos", type=int, help="only the first N videos")
    parser.add_argument("--limit", type=int, help="only the first N analysed frames of each video")
    parser.add_argument("--detect-size", type=int, default=640, help="the detector's input size (scan's default)")
    parser.add_argument("--cache", type=Path, help="folder keeping the reference detections between runs")
    parser.add_argument("--scores", type=int, metavar="N",
                        help="also scan the first N videos with the model at each K and compare the scores")
    args = parser.parse_args()
    if not FFPP.is_dir():
        sys.exit(f"shared videos not found: {FFPP} (set FAKESCOPE_SHARED)")

    from fakescope.faces import YuNetDetector
    from fakescope.video import FrameSelection

    videos = sorted(FFPP.rglob("*.mp4"))[: args.videos]
    selection = FrameSelection.from_options(frames=args.frames)
    detector = YuNetDetector(max_side=args.detect_size)
    configurations = [(every, mode) for mode in args.follow for every in args.every if not (every == 1 and mode == "hold")]
    tallies = {configuration: Tally() for configuration in configurations}
    detector_seconds, detector_calls = 0.0, 0
    started = time.perf_counter()
    for number, video in enumerate(videos, 1):
        replay = ReplayedDetector()
        followers = {configuration: make_follower(*configuration, replay) for configuration in configurations}
        frames = 0
        for frame, reference in reference_detections(video, args.cache, selection, detector, args.limit):
            frames += 1
            replay.answer = reference
            reference_boxes = [d.box for d in reference]
            for configuration, follower in followers.items():
                follow_started = time.perf_counter()
                produced = follower.detect(frame.image, frame.index)
                tallies[configuration].follow_seconds += time.perf_counter() - follow_started
                tallies[configuration].add_frame(reference_boxes, [d.box for d in produced])
        seconds = getattr(reference_detections, "seconds", 0.0)
        if seconds:
            detector_seconds += seconds
            detector_calls += frames
        for configuration, follower in followers.items():
            tallies[configuration].detector_runs += follower.detector_runs
            tallies[configuration].reasons.update(follower.reasons)
        print(f"[{number}/{len(videos)}] {video.relative_to(FFPP)}: {frames} frames "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    detect_ms = 1000 * detector_seconds / detector_calls if detector_calls else float("nan")
    frames_total = next(iter(tallies.values())).frames
    where = f"{args.frames} frames per video" if args.frames else "every frame"
    print(f"\n{len(videos)} videos, {frames_total} analysed frames ({where}); YuNet at {args.detect_size} px: "
          f"{detect_ms:.1f} ms a call (measured here; nan: all cached)")
    print(f"{'follow':<9}{'K':>3} {'recall':>8} {'precision':>9} {'mean IoU':>9} {'detector on':>12} "
          f"{'follow ms':>10} {'faces ms/frame':>15}  re-detections (cut / unsure)")
    for (every, mode), tally in tallies.items():
        recall = tally.found / tally.reference_faces if tally.reference_faces else float("nan")
        precision = tally.found / tally.produced_faces if tally.produced_faces else float("nan")
        mean_iou = tally.iou_sum / tally.found if tally.found else float("nan")
        runs = tally.detector_runs / tally.frames
        follow_ms = 1000 * tally.follow_seconds / tally.frames
        cost = runs * detect_ms + follow_ms
        reasons = f"{tally.reasons['cut']} / {tally.reasons['unsure']}" if every > 1 else ""
        print(f"{mode if every > 1 else 'detector':<9}{every:>3} {recall:>8.4f} {precision:>9.4f} {mean_iou:>9.3f} "
              f"{100 * runs:>11.1f}% {follow_ms:>10.2f} {cost:>15.1f}  {reasons}")
    if args.scores:
        compare_scores(videos[: args.scores], sorted({1, *args.every}), selection, args.limit)


def compare_scores(videos: list[Path], intervals: list[int], selection, limit: int | None) -> None:
    """Scan ``videos`` with the shipped model at each detector interval; print how the scores move from K=1."""
    import tempfile

    from fakescope.analysis import Scanner
    from fakescope.video import MediaReader, VideoWriter

    scanners = {every: Scanner.load(device="cpu", precision="fp32", detect_every=every, selection=selection)
                for every in intervals}
    differences: dict[int, list[float]] = {every: [] for every in intervals[1:]}
    video_differences: dict[int, list[float]] = {every: [] for every in intervals[1:]}
    flips: dict[int, int] = {every: 0 for every in intervals[1:]}
    unmatched: dict[int, int] = {every: 0 for every in intervals[1:]}
    with tempfile.TemporaryDirectory() as tmp:
        for number, video in enumerate(videos, 1):
            if limit is not None:
                short = Path(tmp) / f"{number}.mp4"
                with MediaReader(video) as reader:
                    info = reader.info
                    with VideoWriter(short, info.width, info.height, info.fps, crf=18, preset="ultrafast") as writer:
                        for position, frame in enumerate(reader):
                            if position >= limit:
                                break
                            writer.write(frame.image)
                video = short
            results = {every: scanner.scan(video) for every, scanner in scanners.items()}
            reference = results[1]
            faces = {(face.frame_index, face.track_id): face for frame in reference.frames for face in frame.faces}
            for every in intervals[1:]:
                result = results[every]
                if reference.p_fake is not None and result.p_fake is not None:
                    video_differences[every].append(abs(result.p_fake - reference.p_fake))
                flips[every] += result.verdict != reference.verdict
                for frame in result.frames:
                    for face in frame.faces:
                        match = faces.get((face.frame_index, face.track_id))
                        if match is None or match.p_fake is None or face.p_fake is None:
                            unmatched[every] += 1
                        else:
                            differences[every].append(abs(face.p_fake - match.p_fake))
            print(f"[scores {number}/{len(videos)}] {video.name}: p_fake "
                  + ", ".join(f"K={every} {result.p_fake if result.p_fake is None else round(result.p_fake, 4)}"
                              for every, result in results.items()), file=sys.stderr, flush=True)
    print(f"\nscores against K=1 on {len(videos)} videos"
          + (f" (first {limit} frames each)" if limit else "") + ", shipped model, fp32:")
    print(f"{'K':>3} {'faces |dp| mean':>16} {'95th pct':>9} {'max':>7} {'unmatched':>10} {'videos |dp| max':>16} "
          f"{'verdicts changed':>17}")
    for every in intervals[1:]:
        values = np.array(differences[every]) if differences[every] else np.array([np.nan])
        video_max = max(video_differences[every], default=float("nan"))
        print(f"{every:>3} {values.mean():>16.4f} {np.percentile(values, 95):>9.4f} {values.max():>7.4f} "
              f"{unmatched[every]:>10} {video_max:>16.4f} {flips[every]:>17}")


if __name__ == "__main__":
    main()
