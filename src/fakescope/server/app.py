"""The FastAPI application of ``fakescope serve``: the REST API (``/api/v1``), the pages (``/``, ``/jobs/ID``,
``/live``) and the live WebSocket, over one loaded ``Scanner``."""
from __future__ import annotations

import copy
import math
import mimetypes
import shutil
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..analysis import Scanner
from ..models import LazyModel
from ..names import printable
from ..options import LIVE_FACE_OPTIONS
from ..video.sniff import sniff_file
from .jobs import DONE, FAILED, QUEUED, RUNNING, Job, JobStore, is_job_id, new_job_id
from .live_socket import LiveService
from .scan_form import ScanOptions, to_options, with_server_options
from .security import LimitUploadSize, RequireApiKey
from .worker import ScanWorker

API = "/api/v1"
ACCEPTED_KINDS = {"video", "image", "heif", "container"}
"""Sniffed kinds a job is made for: media, and containers FFmpeg could not open (their job fails with the
decoder's reason). Audio, text and anything else is refused with 415."""
RESULT_FILES = ("summary.json", "predictions.csv", "annotated.mp4", "annotated.jpg", "trend.png", "report.html",
                "heatmap.mp4", "heatmap.jpg")
COPY_CHUNK = 1024 * 1024


@dataclass
class ServerSettings:
    """How a server runs: where it keeps its jobs, and its limits."""

    data_dir: Path
    api_key: str | None = None
    max_upload_bytes: int = 1024 ** 3
    max_pending_jobs: int = 50
    cors_origins: tuple[str, ...] = ()
    max_live_viewers: int = 8
    default_retry_after_s: int = 30

    @property
    def uploads(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def results(self) -> Path:
        return self.data_dir / "results"


def static_dir() -> Path:
    return Path(str(resources.files("fakescope.server") / "static"))


def live_scanner_for(scanner: Scanner) -> Scanner:
    """The live model: a copy of the scan model (heatmap hooks on one never touch the other) with live's face
    defaults (a smaller detector input). Copied when first needed: at once on the torch runtime, never on ONNX
    Runtime (live makes no heatmaps)."""
    model = LazyModel(scanner.config, lambda: copy.deepcopy(scanner.model))
    return Scanner(model, scanner.meta, LIVE_FACE_OPTIONS, scanner.analysis, scanner.device,
                   onnx_model=scanner.onnx_model)


def create_app(scanner: Scanner, settings: ServerSettings, start_worker: bool = True) -> FastAPI:
    """The application. Jobs left queued or running by an earlier process are scanned (again) once it starts."""
    for folder in (settings.uploads, settings.results):
        folder.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.data_dir / "jobs.sqlite3")
    worker = ScanWorker(store, scanner, settings.uploads, settings.results)
    live = LiveService(live_scanner_for(scanner), settings.max_live_viewers, allowed_origins=settings.cors_origins)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.requeue_interrupted()
        if start_worker:
            worker.start()
        yield
        worker.stop()

    app = FastAPI(
        title="fakescope",
        version=__version__,
        description="Deepfake video detection: upload a video or image, follow its scan, read its verdict and "
                    "evidence. Send the API key as `X-API-Key` when the server has one.",
        lifespan=lifespan,
    )
    app.state.store, app.state.worker, app.state.live, app.state.settings = store, worker, live, settings

    def job_view(job: Job) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": job.id, "name": job.name, "state": job.state, "media": job.media, "size_bytes": job.size_bytes,
            "options": job.options, "created": job.created, "started": job.started, "finished": job.finished,
            "attempts": job.attempts,
            "progress": {"frames_done": job.frames_done, "frames_total": job.frames_total},
            "url": f"{API}/jobs/{job.id}", "page": f"/jobs/{job.id}",
        }
        if job.state in (DONE, FAILED):
            view["summary"] = job.summary
            view["error"] = job.error
            view["files"] = {name: f"{API}/jobs/{job.id}/files/{name}" for name in result_files(job.id)}
        if job.state == QUEUED:
            view["queue_position"] = store.count(RUNNING) + store.queued_before(job.seq)
        return view

    def result_files(job_id: str) -> list[str]:
        """The result files of a job, as names relative to its folder (the only names served)."""
        out = settings.results / job_id
        names = [name for name in RESULT_FILES if (out / name).is_file()]
        heatmaps = out / "heatmaps"
        if heatmaps.is_dir():
            names += sorted(f"heatmaps/{path.name}" for path in heatmaps.iterdir()
                            if path.is_file() and path.suffix == ".png")
        return names

    def known_job(job_id: str) -> Job:
        job = store.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    def retry_after() -> str:
        durations = store.recent_durations()
        mean = sum(durations) / len(durations) if durations else settings.default_retry_after_s
        return str(max(1, math.ceil(mean)))

    @app.get(f"{API}/health", tags=["server"])
    def health() -> dict[str, Any]:
        """Whether the server is up, and its queue."""
        return {"status": "ok", "worker_alive": worker.alive,
                "jobs": {"queued": store.count(QUEUED), "running": store.count(RUNNING)},
                "live_viewers": live.viewers}

    @app.get(f"{API}/model", tags=["server"])
    def model() -> dict[str, Any]:
        """The model in use: its name, the sha256 of its weights and the threshold of its verdicts."""
        return {"name": scanner.config.name, "weights": Path(scanner.meta.path or "").name or None,
                "sha256": scanner.meta.sha256, "threshold": scanner.threshold, "trained": scanner.meta.trained,
                "device": str(scanner.device), "runtime": scanner.encoder.runtime}

    @app.post(f"{API}/jobs", status_code=202, tags=["jobs"],
              responses={413: {"description": "upload too large"}, 415: {"description": "not a video or image"},
                         503: {"description": "queue full (see Retry-After)"}})
    def submit(file: Annotated[UploadFile, File(description="the video or image")],
               options: Annotated[ScanOptions, Form()]) -> JSONResponse:  # type: ignore[valid-type]
        """Queue a scan of an uploaded video or image (multipart form: ``file`` and the scan options). Answers
        202 with the job's id and URL; follow it with ``GET /api/v1/jobs/{id}``."""
        try:  # options this server cannot run (bf16 with its int8 ONNX model) are refused now, not as a failed job
            scanner.with_analysis(with_server_options(to_options(options)[0], scanner.analysis))
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        if store.count(QUEUED, RUNNING) >= settings.max_pending_jobs:
            raise HTTPException(503, "the job queue is full; try again later", headers={"Retry-After": retry_after()})
        job_id = new_job_id()
        upload = settings.uploads / job_id
        partial = settings.uploads / f"{job_id}.part"
        try:
            size = _copy_upload(file, partial, settings.max_upload_bytes)
            sniffed = sniff_file(partial)
            if sniffed.kind not in ACCEPTED_KINDS:
                raise HTTPException(415, f"not a video or image: the content is {sniffed.description}")
            partial.rename(upload)
        finally:
            partial.unlink(missing_ok=True)
        name = printable(file.filename or "upload")[:200]
        job = store.add(job_id, name, size, sniffed.description, options.model_dump())
        worker.wake()
        return JSONResponse(job_view(job), status_code=202, headers={"Location": f"{API}/jobs/{job_id}"})

    @app.get(f"{API}/jobs", tags=["jobs"])
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        """The jobs, newest first."""
        return {"jobs": [job_view(job) for job in store.list(limit, offset)]}

    @app.get(f"{API}/jobs/{{job_id}}", tags=["jobs"], responses={404: {"description": "unknown job"}})
    def job_status(job_id: str) -> dict[str, Any]:
        """A job's state and progress (frames done / total); when finished, its summary (as summary.json) and the
        URLs of its files."""
        return job_view(known_job(job_id))

    @app.delete(f"{API}/jobs/{{job_id}}", status_code=204, tags=["jobs"],
                responses={404: {"description": "unknown job"}, 409: {"description": "the job is running"}})
    def delete_job(job_id: str) -> Response:
        """Delete a finished or queued job with its upload and files."""
        job = known_job(job_id)
        if worker.current == job.id or not store.delete_unless_running(job.id):
            raise HTTPException(409, "the job is running; delete it once it has finished")
        shutil.rmtree(settings.results / job.id, ignore_errors=True)
        (settings.uploads / job.id).unlink(missing_ok=True)
        return Response(status_code=204)

    @app.get(f"{API}/jobs/{{job_id}}/files/{{name:path}}", tags=["jobs"],
             responses={404: {"description": "unknown job or file"}})
    def job_file(job_id: str, name: str) -> FileResponse:
        """One result file: summary.json, predictions.csv, annotated.mp4 (HTTP range requests, so players can
        seek), trend.png, report.html, heatmap.mp4, heatmaps/*.png."""
        job = known_job(job_id)
        if name not in result_files(job.id):
            raise HTTPException(404, "no such file for this job")
        path = settings.results / job.id / name
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Content-Security-Policy": "sandbox"} if name.endswith(".html") else {}
        return FileResponse(path, media_type=media_type, headers=headers)

    @app.websocket(f"{API}/live")
    async def live_socket(socket: WebSocket) -> None:
        """Live detection: JPEG frames in (a 12-byte header each), boxes and scores out as JSON."""
        await live.serve(socket)

    pages = static_dir()

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(pages / "index.html")

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(job_id: str) -> FileResponse:
        known_job(job_id)
        return FileResponse(pages / "job.html")

    @app.get("/live", include_in_schema=False)
    def live_page() -> FileResponse:
        return FileResponse(pages / "live.html")

    app.mount("/static", StaticFiles(directory=pages), name="static")

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["X-API-Key", "Authorization"])
    app.add_middleware(LimitUploadSize, max_bytes=settings.max_upload_bytes)
    if settings.api_key:
        app.add_middleware(RequireApiKey, api_key=settings.api_key)
    return app


def _copy_upload(file: UploadFile, target: Path, max_bytes: int) -> int:
    """Copy an upload to ``target`` (a generated name); 413 past ``max_bytes``. Returns its size."""
    size = 0
    with open(target, "wb") as handle:
        while chunk := file.file.read(COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(413, f"the upload is larger than this server's limit of {max_bytes} bytes")
            handle.write(chunk)
    return size

