"""Load on ``fakescope serve`` (loopback only, bounded; run by hand, prints its figures as JSON).

    .venv/bin/python benchmarks/serve_load.py                    # both parts
    .venv/bin/python benchmarks/serve_load.py --part jobs        # 20 clients uploading and polling at once
    .venv/bin/python benchmarks/serve_load.py --part live        # /live at 720p in Chromium with a fake webcam

jobs: CLIENTS clients each upload a 2 s clip of a shared FaceForensics++ video (``frames`` JOB_FRAMES: the
annotated video still has every frame), poll their job every 0.5 s until it finishes, then read its summary and a
range of its annotated video. Counted: failed requests (a status other than the one expected, or no answer), jobs
that did not complete, and the server's RSS (sampled, and its peak, VmHWM).
live: Chromium (Debian's, through Playwright) opens /live with a fake 1280x720 webcam playing a shared clip for
LIVE_SECONDS; the page's own counters give frames shown per second, analyses per second and the latency from a
frame's capture to its boxes being drawn (median, p95).
Both use the shipped weights (xception_mid_lstm).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from server_helpers import (  # noqa: E402 - the tests' server and webcam helpers
    CHROMIUM, CHROMIUM_ARGS, ServerProcess, fake_webcam_args, write_y4m)

SHARED = REPO.parent / "shared"
VIDEO = SHARED / "data/ffpp-mini/manipulated_sequences/Deepfakes/c23/videos/469_481.mp4"
WEBCAM_VIDEO = SHARED / "data/ffpp-mini/original_sequences/youtube/c23/videos/183.mp4"


def cut_clip(video: Path, target: Path, seconds: float) -> Path:
    import cv2

    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(int(seconds * fps)):
        ok, image = capture.read()
        if not ok:
            break
        writer.write(image)
    writer.release()
    capture.release()
    return target


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def jobs_part(clients: int, job_frames: int, work: Path) -> dict:
    import httpx

    clip = cut_clip(VIDEO, work / "clip.mp4", 2.0).read_bytes()
    data = work / "data"
    data.mkdir()
    failures: list[str] = []
    completed: list[float] = []
    requests = 0
    lock = threading.Lock()

    def client(number: int, base_url: str) -> None:
        nonlocal requests

        def call(method: str, path: str, expected: int, **kwargs) -> httpx.Response | None:
            nonlocal requests
            with lock:
                requests += 1
            try:
                response = http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                with lock:
                    failures.append(f"client {number}: {method} {path}: {type(error).__name__}: {error}")
                return None
            if response.status_code != expected:
                with lock:
                    failures.append(f"client {number}: {method} {path}: {response.status_code} {response.text[:200]}")
                return None
            return response

        started = time.monotonic()
        with httpx.Client(base_url=base_url, timeout=60) as http:
            accepted = call("POST", "/api/v1/jobs", 202, files={"file": (f"client{number}.mp4", clip)},
                            data={"frames": str(job_frames)})
            if accepted is None:
                return
            url = accepted.json()["url"]
            while True:
                polled = call("GET", url, 200)
                if polled is None:
                    return
                job = polled.json()
                if job["state"] in ("done", "failed"):
                    break
                time.sleep(0.5)
            if job["state"] != "done":
                with lock:
                    failures.append(f"client {number}: job {job['state']}: {job.get('error')}")
                return
            call("GET", job["files"]["summary.json"], 200)
            call("GET", job["files"]["annotated.mp4"], 206, headers={"Range": "bytes=0-65535"})
            with lock:
                completed.append(time.monotonic() - started)

    with ServerProcess(data, None, "--max-queued", str(max(50, clients))) as server:
        pid = server.process.pid
        samples: list[int] = []
        threads = [threading.Thread(target=client, args=(number, server.url)) for number in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            samples.append(rss_kib(pid))
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        peak = rss_kib(pid, "VmHWM")
        idle_rss = rss_kib(pid)
    return {
        "clients": clients, "frames_per_job": job_frames, "clip_seconds": 2.0, "requests": requests,
        "failed_requests": len(failures), "failures": failures[:10], "jobs_completed": len(completed),
        "wall_s": round(elapsed, 1), "jobs_per_minute": round(60 * len(completed) / elapsed, 1),
        "job_turnaround_s": {"median": round(statistics.median(completed), 1) if completed else None,
                             "max": round(max(completed), 1) if completed else None},
        "server_rss_mib": {"first_sample": round(samples[0] / 1024) if samples else None,
                           "max_sampled": round(max(samples) / 1024) if samples else None,
                           "peak_vmhwm": round(peak / 1024), "after": round(idle_rss / 1024)},
    }


def live_part(seconds: float, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    y4m = write_y4m(WEBCAM_VIDEO, work / "webcam720.y4m", seconds=3.0, size=(1280, 720))
    data = work / "live-data"
    data.mkdir()
    with ServerProcess(data) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_webcam_args(y4m))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url + "/live?start")
            page.wait_for_function("window.fakescopeLive && window.fakescopeLive.analyses > 0", timeout=30_000)
            page.evaluate("window.fakescopeLive.latencies = []; window.fakescopeLive.analyses = 0")
            start_boxes = page.evaluate("window.fakescopeLive.boxesDrawn")
            shown_fps, analysis_fps = [], []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1.0)
                shown_fps.append(page.evaluate("window.fakescopeLive.shownFps"))
                analysis_fps.append(page.evaluate("window.fakescopeLive.analysesPerSecond"))
            state = page.evaluate("({latencies: window.fakescopeLive.latencies, analyses: window.fakescopeLive.analyses,"
                                  " boxes: window.fakescopeLive.boxesDrawn, width: document.getElementById('video').videoWidth,"
                                  " height: document.getElementById('video').videoHeight})")
        finally:
            browser.close()
    latencies = sorted(state["latencies"])

    def percentile(percent: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(percent / 100 * len(latencies)))], 1) if latencies else None

    return {
        "camera": f"{state['width']}x{state['height']}", "seconds": seconds, "analyses": state["analyses"],
        "frames_shown_per_s": round(statistics.median(shown_fps), 1),
        "analyses_per_s": round(state["analyses"] / seconds, 1),
        "analyses_per_s_page_median": round(statistics.median(analysis_fps), 1),
        "latency_capture_to_drawn_ms": {"median": percentile(50), "p95": percentile(95), "max": percentile(100)},
        "boxes_drawn": state["boxes"] - start_boxes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("jobs", "live", "both"), default="both")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--job-frames", type=int, default=10)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if not VIDEO.is_file():
        print(f"needs the shared clips ({VIDEO})", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.part in ("jobs", "both"):
            results["jobs"] = jobs_part(args.clients, args.job_frames, work)
            print(json.dumps({"jobs": results["jobs"]}, indent=2), flush=True)
        if args.part in ("live", "both"):
            results["live"] = live_part(args.live_seconds, work)
            print(json.dumps({"live": results["live"]}, indent=2), flush=True)
    ok = all(part.get("failed_requests", 0) == 0 for part in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
