"""``fakescope serve``'s REST API, pages and live WebSocket, through FastAPI's test client."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fakescope.cli.main import main
from fakescope.options import PRECISIONS, AnalysisOptions, OutputOptions
from fakescope.server.jobs import RUNNING, JobStore

from clips import face_image, make_bad_inputs, make_clip
from server_helpers import live_message, make_app, wait_for_job

API = "/api/v1"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=8, size=(320, 240))


def submit(client: TestClient, path: Path, name: str = "clip.mp4", headers: dict | None = None, **options):
    return client.post(f"{API}/jobs", files={"file": (name, path.read_bytes())},
                       data={key: str(value) for key, value in options.items()}, headers=headers or {})


def test_scan_job_from_upload_to_every_result_file_and_deletion(tiny_weights: Path, clip: Path,
                                                                 tmp_path: Path) -> None:
    with TestClient(make_app(tiny_weights, tmp_path / "data")) as client:
        response = submit(client, clip, name="../../etc/passwd", every=2, threshold=0.3)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert response.headers["location"] == accepted["url"] == f"{API}/jobs/{accepted['id']}"
        assert accepted["options"]["threshold"] == 0.3 and accepted["options"]["every"] == 2
        job = wait_for_job(client, accepted["id"])
        assert job["state"] == "done", job
        assert job["progress"] == {"frames_done": 4, "frames_total": 4}
        assert job["summary"]["threshold"] == 0.3 and job["summary"]["frames_analysed"] == 4
        # Stored under generated names only: the client's name is a label.
        stored = sorted(path.name for path in (tmp_path / "data" / "uploads").iterdir())
        assert stored == [accepted["id"]] and not (tmp_path / "etc").exists()

        files = job["files"]
        assert {"summary.json", "predictions.csv", "annotated.mp4", "trend.png", "report.html"} <= set(files)
        summary = client.get(files["summary.json"])
        assert summary.json() == job["summary"]
        assert client.get(files["predictions.csv"]).text.startswith("frame_index,time_s,track_id")
        assert client.get(files["trend.png"]).headers["content-type"] == "image/png"
        report = client.get(files["report.html"])
        assert report.headers["content-security-policy"] == "sandbox"
        video = client.get(files["annotated.mp4"])
        assert video.headers["content-type"] == "video/mp4" and video.headers["accept-ranges"] == "bytes"
        part = client.get(files["annotated.mp4"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == video.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(video.content)}"

        listed = client.get(f"{API}/jobs").json()["jobs"]
        assert [item["id"] for item in listed] == [accepted["id"]]
        assert client.delete(accepted["url"]).status_code == 204
        assert client.get(accepted["url"]).status_code == 404
        assert client.get(files["summary.json"]).status_code == 404
        assert not (tmp_path / "data" / "results" / accepted["id"]).exists()


def test_every_refusal_has_its_status(tiny_weights: Path, clip: Path, tmp_path: Path) -> None:
    app = make_app(tiny_weights, tmp_path / "data", start_worker=False, max_upload_bytes=300_000,
                   max_pending_jobs=2)
    with TestClient(app) as client:
        # Not a video, whatever its name says: refused by content.
        text = tmp_path / "notes.mp4"
        text.write_text("these are not frames\n" * 20)
        response = submit(client, text)
        assert response.status_code == 415 and "text" in response.json()["detail"]
        # Too large: by its Content-Length, and while a chunked body streams in.
        big = tmp_path / "big.mp4"
        big.write_bytes(clip.read_bytes() + bytes(400_000))
        assert submit(client, big).status_code == 413
        chunks = (bytes(64 * 1024) for _ in range(10))
        assert client.post(f"{API}/jobs", content=chunks,
                           headers={"content-type": "multipart/form-data; boundary=x"}).status_code == 413
        assert list((tmp_path / "data" / "uploads").iterdir()) == []
        # Options the command line refuses are refused here (422), not crashed on.
        assert submit(client, clip, threshold=1.5).status_code == 422
        assert submit(client, clip, every=2, fps=5).status_code == 422
        assert submit(client, clip, precision="fp64").status_code == 422
        # Unknown jobs and files.
        for path in (f"{API}/jobs/{'0' * 32}", f"{API}/jobs/nope", f"{API}/jobs/{'0' * 32}/files/summary.json",
                     f"/jobs/{'0' * 32}"):
            assert client.get(path).status_code == 404, path
        assert client.delete(f"{API}/jobs/{'0' * 32}").status_code == 404
        # A full queue: 503 with Retry-After.
        first = submit(client, clip).json()
        assert submit(client, clip).status_code == 202
        full = submit(client, clip)
        assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
        assert client.get(f"{API}/jobs/{first['id']}/files/../../jobs.sqlite3").status_code == 404
        assert client.get(f"{API}/jobs/{first['id']}/files/summary.json").status_code == 404  # not finished
        assert client.get(f"{API}/health").json()["jobs"] == {"queued": 2, "running": 0}
        app.state.store.claim_next()  # the first job is now running: it cannot be deleted under the worker
        assert client.delete(f"{API}/jobs/{first['id']}").status_code == 409


def test_api_key_guards_every_route_and_the_websocket(tiny_weights: Path, tmp_path: Path) -> None:
    app = make_app(tiny_weights, tmp_path / "data", start_worker=False, api_key="s3cret")
    with TestClient(app) as client:
        for path in (f"{API}/health", f"{API}/model", f"{API}/jobs", "/docs", "/openapi.json", "/static/common.js"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401, path
            assert client.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200, path
        assert client.post(f"{API}/jobs", files={"file": ("a.mp4", b"x")}).status_code == 401
        assert client.get(f"{API}/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get(f"{API}/health", headers={"Cookie": "fakescope_key=s3cret"}).status_code == 200
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "API key" in page.text
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(f"{API}/live") as socket:
                socket.receive_json()


def test_health_model_pages_and_openapi_follow_the_options(tiny_weights: Path, tmp_path: Path) -> None:
    with TestClient(make_app(tiny_weights, tmp_path / "data", start_worker=False)) as client:
        assert client.get(f"{API}/health").json()["status"] == "ok"
        model = client.get(f"{API}/model").json()
        assert model["name"] == "tiny_lstm" and len(model["sha256"]) == 64 and model["threshold"] == 0.5
        for page in ("/", "/live"):
            response = client.get(page)
            assert response.status_code == 200 and "<html" in response.text
        assert "Swagger" in client.get("/docs").text
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        fields = schema["ScanOptions"]["properties"]
        assert fields["precision"]["enum"] == list(PRECISIONS)
        assert fields["precision"]["default"] == AnalysisOptions().precision
        assert fields["heatmap"]["default"] == OutputOptions().heatmap
        assert "access-control-allow-origin" not in client.get(
            f"{API}/health", headers={"Origin": "https://elsewhere.example"}).headers


@pytest.mark.slow
def test_cors_only_for_the_origins_configured(tiny_weights: Path, tmp_path: Path) -> None:
    app = make_app(tiny_weights, tmp_path / "data", start_worker=False, cors_origins=("https://newsroom.example",))
    with TestClient(app) as client:
        allowed = client.get(f"{API}/health", headers={"Origin": "https://newsroom.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://newsroom.example"
        other = client.get(f"{API}/health", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.slow
def test_a_broken_video_gives_a_failed_job_with_its_reason(tiny_weights: Path, tmp_path: Path) -> None:
    broken = make_bad_inputs(tmp_path / "bad")["truncated"]
    with TestClient(make_app(tiny_weights, tmp_path / "data")) as client:
        response = submit(client, broken)
        assert response.status_code == 202
        job = wait_for_job(client, response.json()["id"])
        assert job["state"] == "failed" and job["error"], job
        assert job["summary"]["verdict"] == "error" and job["summary"]["reason"] == job["error"]


@pytest.mark.slow
def test_heatmaps_are_listed_and_served(tiny_weights: Path, clip: Path, tmp_path: Path) -> None:
    with TestClient(make_app(tiny_weights, tmp_path / "data")) as client:
        job = wait_for_job(client, submit(client, clip, heatmap="true", frames=3).json()["id"])
        assert job["state"] == "done", job
        heatmaps = [name for name in job["files"] if name.startswith("heatmaps/")]
        assert heatmaps and "heatmap.mp4" in job["files"]
        assert client.get(job["files"][heatmaps[0]]).headers["content-type"] == "image/png"


@pytest.mark.slow
def test_jobs_left_running_by_a_dead_server_run_again(tiny_weights: Path, clip: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with TestClient(make_app(tiny_weights, data, start_worker=False)) as client:
        ids = [submit(client, clip).json()["id"] for _ in range(2)]
    store = JobStore(data / "jobs.sqlite3")
    interrupted = store.claim_next()  # as if the process died mid-scan
    assert interrupted is not None and interrupted.state == RUNNING
    (data / "results" / interrupted.id).mkdir()
    (data / "results" / interrupted.id / "partial.tmp").write_text("half")
    store.close()
    with TestClient(make_app(tiny_weights, data)) as client:
        jobs = [wait_for_job(client, job_id) for job_id in ids]
        assert [job["state"] for job in jobs] == ["done", "done"]
        assert jobs[0]["attempts"] == 2 and jobs[1]["attempts"] == 1
        assert not (data / "results" / ids[0] / "partial.tmp").exists()
        assert len(client.get(f"{API}/jobs").json()["jobs"]) == 2


@pytest.mark.slow
def test_live_socket_answers_each_viewer_with_its_own_tracks(tiny_weights: Path, tmp_path: Path) -> None:
    face = face_image()
    with TestClient(make_app(tiny_weights, tmp_path / "data", start_worker=False, max_live_viewers=2)) as client:
        with client.websocket_connect(f"{API}/live") as first, client.websocket_connect(f"{API}/live") as second:
            with pytest.raises(WebSocketDisconnect):  # a third viewer is one too many
                with client.websocket_connect(f"{API}/live") as third:
                    third.receive_json()
            first.send_bytes(live_message(face, 1, 123.5))
            answer = first.receive_json()
            assert answer["type"] == "analysis" and answer["frame"] == 1 and answer["captured_ms"] == 123.5
            assert (answer["width"], answer["height"]) == (face.shape[1], face.shape[0])
            assert len(answer["faces"]) == 1
            box = answer["faces"][0]
            assert 0 <= box["p_fake"] <= 1 and box["label"] in ("real", "fake") and len(box["box"]) == 4
            for number in (2, 3):
                first.send_bytes(live_message(face, number))
                assert first.receive_json()["frame"] == number
            second.send_bytes(live_message(face, 1))
            other = second.receive_json()
            # The second viewer starts its own track from scratch: its first step equals the first viewer's.
            assert other["faces"][0]["p_fake"] == pytest.approx(box["p_fake"], abs=1e-4)
            assert client.get(f"{API}/health").json()["live_viewers"] == 2
            first.send_bytes(b"\x01" * 12 + b"not a jpeg")
            assert first.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect):  # another site's page
            with client.websocket_connect(f"{API}/live", headers={"Origin": "https://elsewhere.example"}) as socket:
                socket.receive_json()


def test_serve_refuses_an_open_address_without_a_key(capsys, monkeypatch) -> None:
    monkeypatch.delenv("FAKESCOPE_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "API key" in capsys.readouterr().err
