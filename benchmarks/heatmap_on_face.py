"""Where do the shipped model's Grad-CAM heatmaps lie? Share of each map on the face box, per video (run by hand).

    .venv/bin/python benchmarks/heatmap_on_face.py [--weights CKPT] [--frames 8] [--method hirescam|gradcam] [VIDEO ...]

For evenly spaced frames of each video (default: a real and fakes of ffpp-mini), the largest face is cropped as the
scan crops it (1.3x the face box), and the fake-class CAM is computed through the temporal model. The face box
is the crop's central 1/1.3 (59% of its area). Prints, per video: the share of the CAM's mass on the face box, the
share of its hot pixels (>= 0.5 of the peak) on it, and the share of frames whose peak is on it.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAKESCOPE_SHARED", REPO.parent / "shared"))
FFPP = SHARED / "data/ffpp-mini"
DEFAULT_VIDEOS = [
    FFPP / "manipulated_sequences/Deepfakes/c23/videos/469_481.mp4",
    FFPP / "manipulated_sequences/FaceSwap/c23/videos/183_253.mp4",
    FFPP / "manipulated_sequences/NeuralTextures/c23/videos/585_599.mp4",
    FFPP / "original_sequences/youtube/c23/videos/469.mp4",
    FFPP / "original_sequences/youtube/c23/videos/585.mp4",
]


def face_crops(video: Path, count: int) -> list[np.ndarray]:
    from fakescope.faces import create_face_detector, crop_face
    from fakescope.video import FrameSelection, MediaReader

    detector = create_face_detector("yunet")
    crops = []
    with MediaReader(video, selection=FrameSelection.from_options(frames=count), decode_all=False) as reader:
        for frame in reader:
            faces = detector.detect(frame.image)
            if faces:
                box = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])).box
                crops.append(crop_face(frame.image, box, margin=1.3, size=224))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--weights", type=Path, help="checkpoint (default: the shipped weights)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--method", choices=["hirescam", "gradcam"], default="hirescam",
                        help="hirescam (what scan uses by default) or gradcam")
    args = parser.parse_args()

    from fakescope.analysis import Scanner
    from fakescope.analysis.heatmaps import TrackGradCam

    detector = Scanner.load(args.weights, device="cpu")
    grad_cam = TrackGradCam(detector.model, method=args.method)
    to_tensor = detector.encoder.to_batch
    size = detector.model.config.input_size
    inner = slice(int(size * 0.15 / 1.3), int(size * (1 - 0.15 / 1.3)))
    print(f"{'video':<60} {'mass on face':>12} {'hot on face':>12} {'peak on face':>12}")
    for video in args.videos:
        crops = face_crops(video, args.frames)
        if not crops:
            print(f"{str(video):<60} no face")
            continue
        cams = grad_cam(to_tensor(crops))
        mass = cams[:, inner, inner].sum() / max(float(cams.sum()), 1e-9)
        hot = cams >= 0.5
        hot_share = hot[:, inner, inner].sum() / max(int(hot.sum()), 1)
        peaks = [np.unravel_index(int(cam.argmax()), cam.shape) for cam in cams]
        peak_share = np.mean([inner.start <= y < inner.stop and inner.start <= x < inner.stop for y, x in peaks])
        name = "/".join(video.parts[-4:]) if len(video.parts) >= 4 else str(video)
        print(f"{name:<60} {mass:>12.2f} {hot_share:>12.2f} {peak_share:>12.2f}")


if __name__ == "__main__":
    main()
