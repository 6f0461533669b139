"""A real ``fakescope serve`` process killed while it scans, and started again: every job finishes once."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from clips import make_clip
from server_helpers import ServerProcess


@pytest.mark.slow
def test_five_jobs_survive_a_killed_server(tiny_weights: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=60, size=(480, 360))
    data = tmp_path / "data"
    data.mkdir()
    server = ServerProcess(data, tiny_weights).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ids = []
            for number in range(5):
                response = client.post("/api/v1/jobs", files={"file": (f"clip{number}.mp4", clip.read_bytes())})
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # kill it mid-scan of the first job
                first = client.get(f"/api/v1/jobs/{ids[0]}").json()
                if first["state"] == "running" and first["progress"]["frames_done"] > 0:
                    break
                time.sleep(0.05)
            assert first["state"] == "running", first
    finally:
        server.kill()
        server.stop()

    with ServerProcess(data, tiny_weights) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            jobs = client.get("/api/v1/jobs").json()["jobs"]
            if all(job["state"] in ("done", "failed") for job in jobs):
                break
            time.sleep(0.2)
        assert sorted(job["id"] for job in jobs) == sorted(ids)  # none lost, none doubled
        assert [job["state"] for job in jobs] == ["done"] * 5, [(job["state"], job.get("error")) for job in jobs]
        by_id = {job["id"]: job for job in jobs}
        assert by_id[ids[0]]["attempts"] == 2  # interrupted, then scanned again from the start
        for job in jobs:
            rows = client.get(job["files"]["predictions.csv"]).text.strip().splitlines()[1:]
            frames = {int(row.split(",")[0]) for row in rows}
            assert len(frames) == 60 == job["summary"]["frames_analysed"], job["id"]
        assert sorted(path.name for path in (data / "results").iterdir()) == sorted(ids)
