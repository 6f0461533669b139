"""Live detection: causal per-track state, frame dropping under a slow model, sources, and the live command."""
from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clips import make_clip, render_frame
from fakescope.analysis import Scanner
from fakescope.analysis.live import (
    MAX_EXTRAPOLATED_FRAMES,
    Analysis,
    LiveAnalyzer,
    LiveFace,
    LiveFrame,
    LiveSourceError,
)
from fakescope.options import LiveOptions

REPO = Path(__file__).resolve().parents[1]
SIZE = (320, 240)


def write_frames(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """An MJPEG .avi: every frame is coded on its own, so equal frames decode equally whatever follows them."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mjpeg", rate=rate)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p"
        stream.codec_context.time_base = 1 / rate
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def detector(tiny_weights: Path) -> Scanner:
    return Scanner.load(tiny_weights, device="cpu", allow_untrained=True)


def run_offline(detector: Scanner, source: Path, **options) -> tuple[LiveAnalyzer, list[Analysis]]:
    """Every frame analysed in order, as fast as it decodes: deterministic."""
    analyses: list[Analysis] = []
    live = LiveAnalyzer(detector, str(source), LiveOptions(drop=False, realtime=False, **options),
                        on_analysis=analyses.append)
    for _ in live:
        pass
    return live, analyses


def predictions(analyses: list[Analysis]) -> dict[tuple[int, int], float]:
    return {(a.frame_index, face.track_id): face.p_fake for a in analyses for face in a.faces}


@pytest.mark.slow  # a live run and a scan of the same clip
def test_offline_live_matches_scan_windows(detector: Scanner, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=20, size=SIZE)
    _, analyses = run_offline(detector, clip)
    window = detector.model.config.window
    assert [face.step for a in analyses for face in a.faces] == [i % window + 1 for i in range(20)]

    scanned = detector.scan(clip)
    expected = {(frame.frame_index, face.track_id): face.p_fake for frame in scanned.frames for face in frame.faces}
    live = predictions(analyses)
    assert live.keys() == expected.keys() and len(live) == 20
    for key, value in expected.items():
        assert live[key] == pytest.approx(value, abs=1e-4), key


@pytest.mark.slow  # live runs paced in real time
def test_prediction_for_a_frame_ignores_later_frames(detector: Scanner, tmp_path: Path) -> None:
    cut, total = 12, 24
    common = [render_frame(i, total, SIZE) for i in range(cut + 1)]
    first = write_frames(tmp_path / "a.avi", common + [render_frame(i, total, SIZE) for i in range(cut + 1, total)])
    other_tail = [render_frame(i, total, SIZE, seed=5) for i in range(cut + 1, total)]
    second = write_frames(tmp_path / "b.avi", common + other_tail)

    a = predictions(run_offline(detector, first)[1])
    b = predictions(run_offline(detector, second)[1])
    up_to_cut = {key: value for key, value in a.items() if key[0] <= cut}
    assert len(up_to_cut) == cut + 1
    assert up_to_cut == {key: value for key, value in b.items() if key[0] <= cut}
    assert any(a.get(key) != b.get(key) for key in set(a) | set(b) if key[0] > cut)


@pytest.mark.slow  # several live runs
def test_smoothing_is_an_exponential_moving_average(detector: Scanner, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=12, size=SIZE)
    faces = [a.faces[0] for a in run_offline(detector, clip, smooth=0.5)[1]]
    raw = [face.p_fake for face in faces]
    assert len(set(raw)) > 1
    assert {a.faces[0].track_id for a in run_offline(detector, clip)[1]} == {0}
    expected = raw[0]
    assert faces[0].p_smooth == expected
    for face in faces[1:]:
        expected = 0.5 * face.p_fake + 0.5 * expected
        assert face.p_smooth == pytest.approx(expected)
    unsmoothed = run_offline(detector, clip, smooth=1.0)[1]
    assert all(face.p_smooth == face.p_fake for a in unsmoothed for face in a.faces)


@pytest.mark.slow  # a long generated clip
def test_a_track_that_ends_drops_its_state(detector: Scanner, tmp_path: Path) -> None:
    frames = ([render_frame(i, 30, SIZE) for i in range(6)] + [render_frame(i, 30, SIZE, face=False) for i in range(8)]
              + [render_frame(i, 30, SIZE) for i in range(6)])
    live, analyses = run_offline(detector, write_frames(tmp_path / "gap.avi", frames))
    before, after = analyses[5].faces, analyses[14].faces
    assert [face.track_id for face in before] == [0] and before[0].step == 6
    assert after[0].track_id != 0 and after[0].step == 1
    assert 0 not in live._tracks


@pytest.mark.slow  # a live run paced in real time
def test_slow_model_drops_frames_and_keeps_latency_bounded(detector: Scanner, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=50, size=SIZE, fps=25.0)
    forward_features = detector.model.forward_features

    def slow_forward_features(batch):
        time.sleep(0.1)
        return forward_features(batch)

    detector.model.forward_features = slow_forward_features
    analyses: list[Analysis] = []
    live = LiveAnalyzer(detector, str(clip), LiveOptions(realtime=True), on_analysis=analyses.append)
    frames = list(live)

    assert [frame.index for frame in frames] == list(range(50))
    assert live.stats.elapsed_s == pytest.approx(2.0, abs=0.5)
    assert 5 <= len(analyses) <= 2.0 * 10 + 2
    assert live.stats.frames_analysed / live.stats.elapsed_s < 11
    assert sum(frame.fresh for frame in frames) < 25  # most frames show the previous boxes
    assert all(frame.faces for frame in frames[20:])
    assert all(a.model_s >= 0.1 > a.detect_s for a in analyses if a.faces)  # the sleep lands in the model stage
    latencies = [a.latency_s for a in analyses]
    analysis_time = float(np.median([a.duration_s for a in analyses]))
    assert np.percentile(latencies, 95) < 2 * analysis_time
    half = len(latencies) // 2
    assert np.mean(latencies[half:]) < 1.5 * np.mean(latencies[:half]) + 0.02  # not growing over the clip


def test_boxes_between_analyses_follow_the_face_motion() -> None:
    face = LiveFace(0, (10.0, 20.0, 50.0, 60.0), 0.9, 0.2, 0.2, 1, velocity=(2.0, -1.0))
    analysis = Analysis(10, 0.4, 0.0, 0.0, 0.1, [face])
    image = np.zeros((8, 8, 3), np.uint8)

    def shown_at(index: int, follow: bool = True) -> tuple[float, ...]:
        return LiveFrame(index, 0.0, image, 0.0, analysis, 25.0, 5.0, follow).faces[0].box

    assert shown_at(10) == face.box
    assert shown_at(13) == (16.0, 17.0, 56.0, 57.0)
    assert shown_at(13, follow=False) == face.box
    far = 10 + MAX_EXTRAPOLATED_FRAMES
    assert shown_at(far + 20) == shown_at(far)


@pytest.mark.slow  # a long generated clip
def test_track_velocity_is_measured_in_pixels_per_source_frame(detector: Scanner, tmp_path: Path) -> None:
    base = render_frame(0, 10, SIZE)
    frames = [np.roll(base, 3 * i, axis=1) for i in range(10)]  # the whole picture moves 3 px right per frame
    _, analyses = run_offline(detector, write_frames(tmp_path / "pan.avi", frames))
    velocity_x, velocity_y = analyses[-1].faces[0].velocity
    assert velocity_x == pytest.approx(3.0, abs=0.7)
    assert abs(velocity_y) < 0.7


class FakeStream:
    """A network stream that delivers ``bursts[i]`` frames after its i-th opening, then dies."""

    kind, fps, description = "stream", 25.0, "rtsp://fake/stream"

    def __init__(self, bursts: list[int]) -> None:
        self.bursts = bursts
        self.opens = 0
        self.left = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens > len(self.bursts):
            raise LiveSourceError("connection refused")
        self.left = self.bursts[self.opens - 1]

    def read(self) -> np.ndarray | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return np.zeros((48, 64, 3), np.uint8)

    def close(self) -> None:
        self.left = 0


def test_dying_stream_is_retried_with_backoff_then_ends(detector: Scanner) -> None:
    stream = FakeStream([4, 3])
    live = LiveAnalyzer(detector, stream, LiveOptions(retries=2, retry_delay_s=0.05))
    started = time.perf_counter()
    frames = list(live)
    assert len(frames) == 7
    assert stream.opens == 4  # the first opening, a reconnection that delivered, then two that failed
    assert "2 reconnection attempts" in live.end_reason
    assert time.perf_counter() - started >= 0.05 + (0.05 + 0.1)  # the back-off doubles, and restarts after a success


# --- the command -------------------------------------------------------------------------------------------------

HARNESS = """
import argparse, sys
from fakescope.cli import live
from fakescope.cli.main import UsageError
parser = argparse.ArgumentParser(prog="fakescope")
live.add_parser(parser.add_subparsers(dest="command"))
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(args.run(args))
except UsageError as error:
    print(f"fakescope live: error: {error}", file=sys.stderr)
    sys.exit(2)
"""


def run_cli(argv: list[str]) -> int:
    namespace: dict = {}
    old_argv = sys.argv
    sys.argv = ["fakescope", *argv]
    try:
        exec(HARNESS, namespace)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        sys.argv = old_argv
    return 0


def live_args(source: str | Path, weights: Path, *extra: str) -> list[str]:
    return ["live", "--source", str(source), "--weights", str(weights), "--allow-untrained", "--device", "cpu", *extra]


def test_output_file_has_every_source_frame(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=30, size=SIZE)
    out = tmp_path / "live.mp4"
    assert run_cli(live_args(clip, tiny_weights, "--no-display", "--output", str(out))) == 0
    assert count_frames(out) == 30
    assert "30 frames shown" in capsys.readouterr().out


def test_max_frames_stops_early(tiny_weights: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=30, size=SIZE)
    out = tmp_path / "live.mp4"
    assert run_cli(live_args(clip, tiny_weights, "--no-display", "--no-realtime", "--max-frames", "7",
                             "--output", str(out))) == 0
    assert count_frames(out) == 7


@pytest.mark.slow  # a live run paced in real time
def test_duration_stops_a_realtime_source(tiny_weights: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=50, size=SIZE, fps=25.0)
    out = tmp_path / "live.mp4"
    assert run_cli(live_args(clip, tiny_weights, "--no-display", "--duration", "0.8", "--output", str(out))) == 0
    assert 12 <= count_frames(out) <= 30


@pytest.mark.parametrize("source", ["missing.mp4", "garbage.mp4", "rtsp://127.0.0.1:9/none"])
def test_bad_source_exits_1_with_a_message(tiny_weights: Path, tmp_path: Path, capsys, source: str) -> None:
    (tmp_path / "garbage.mp4").write_bytes(os.urandom(4096))
    if "://" not in source:
        source = str(tmp_path / source)
    started = time.perf_counter()
    assert run_cli(live_args(source, tiny_weights, "--no-display", "--timeout", "2")) == 1
    assert time.perf_counter() - started < 15
    assert f"cannot open {source}" in capsys.readouterr().err


@pytest.fixture
def dying_http_stream(tmp_path: Path):
    """An MPEG-TS stream on a local HTTP server that breaks off halfway through, then refuses reconnections."""
    clip = tmp_path / "clip.ts"
    with av.open(str(clip), mode="w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for index in range(40):
            frame = av.VideoFrame.from_ndarray(render_frame(index, 40, SIZE), format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    half = clip.read_bytes()[: clip.stat().st_size // 2 // 188 * 188]  # whole 188-byte TS packets
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if len(requests) > 1:
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(half)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.ts", requests
    server.shutdown()
    server.server_close()


@pytest.mark.slow  # reconnections with back-off
def test_stream_dying_midway_is_retried_then_ends_with_the_file_finished(
    tiny_weights: Path, tmp_path: Path, capsys, dying_http_stream
) -> None:
    url, requests = dying_http_stream
    out = tmp_path / "live.mp4"
    assert run_cli(live_args(url, tiny_weights, "--no-display", "--retries", "2", "--timeout", "2",
                             "--output", str(out))) == 0
    assert len(requests) == 3
    assert "stopped delivering frames after 2 reconnection attempts" in capsys.readouterr().err
    assert 5 <= count_frames(out) < 40


def test_untrained_weights_are_refused(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=5, size=SIZE)
    argv = ["live", "--source", str(clip), "--weights", str(tiny_weights), "--no-display"]
    assert run_cli(argv) == 2
    assert "untrained" in capsys.readouterr().err


def test_without_a_display_it_says_to_use_no_display(tiny_weights: Path, tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    clip = make_clip(tmp_path / "clip.mp4", n_frames=5, size=SIZE)
    assert run_cli(live_args(clip, tiny_weights)) == 1
    assert "--no-display" in capsys.readouterr().err


@pytest.mark.slow  # a live run in a subprocess, interrupted
def test_ctrl_c_finishes_the_output_file(tiny_weights: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=150, size=SIZE)
    out = tmp_path / "live.mp4"
    # Ctrl-C as in a terminal: a test run started in the background (`cmd &`) ignores SIGINT, and an ignored signal
    # would be inherited by the child.
    process = subprocess.Popen(
        [sys.executable, "-c", HARNESS, *live_args(clip, tiny_weights, "--no-display", "--output", str(out))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".live.mp4.*.partial*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "interrupted" in stdout
    assert 1 <= count_frames(out) < 150
