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
