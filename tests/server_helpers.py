"""Helpers of the server tests: an app over the tiny untrained model, and waiting for jobs."""
from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fakescope.analysis import Scanner
from fakescope.server import ServerSettings, create_app


def make_app(weights: Path, data_dir: Path, start_worker: bool = True, **settings: Any):
    """The server's app over ``weights`` (allowed untrained), keeping its jobs in ``data_dir``."""
    scanner = Scanner.load(weights, allow_untrained=True, device="cpu")
    return create_app(scanner, ServerSettings(data_dir=data_dir, **settings), start_worker=start_worker)


def wait_for_job(client: Any, job_id: str, timeout_s: float = 60.0, headers: dict | None = None) -> dict:
    """Poll a job until it is done or failed; its final view."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers or {}).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout_s} s: {job}")


def live_message(image_bgr: np.ndarray, number: int, captured_ms: float = 0.0) -> bytes:
    """A frame as the live page sends it: the 12-byte header and a JPEG."""
    ok, jpeg = cv2.imencode(".jpg", image_bgr)
    assert ok
    return struct.pack("<Id", number, captured_ms) + jpeg.tobytes()


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``fakescope serve`` in a child process on a free loopback port: ``with ServerProcess(...) as server``."""

    def __init__(self, data_dir: Path, weights: Path | None = None, *extra: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.weights = weights
        self.extra = extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        import os
        import subprocess
        import sys
        import urllib.request

        command = [sys.executable, "-m", "fakescope.cli.main", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), *self.extra]
        if self.weights is not None:
            command += ["--weights", str(self.weights), "--allow-untrained"]
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=environment)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fakescope serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"fakescope serve did not answer within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything (a crash, a power cut)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # noqa: BLE001 - then it is killed
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_y4m(video: Path, target: Path, seconds: float = 3.0, size: tuple[int, int] = (640, 480)) -> Path:
    """The first ``seconds`` of ``video`` as a 4:2:0 YUV4MPEG2 clip of ``size``: what Chromium's fake webcam
    plays (--use-file-for-fake-video-capture), looped in real time."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = size
    with open(target, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{round(fps * 1000)}:1000 Ip A1:1 C420jpeg\n".encode())
        for _ in range(int(seconds * fps)):
            ok, image = capture.read()
            if not ok:
                break
            planes = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2YUV_I420)
            handle.write(b"FRAME\n" + planes.tobytes())
    capture.release()
    return target


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def fake_webcam_args(y4m: Path) -> list[str]:
    """Chromium flags that give pages a webcam playing ``y4m``, allowed without asking."""
    return ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}"]
