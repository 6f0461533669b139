"""``/api/v1/live``: a browser's webcam frames in over a WebSocket, the causal live model's boxes and scores out.

Each connection gets its own ``LiveAnalyzer`` (its own face tracks and RNN states) over the server's live
``Scanner``. Frames arrive as binary messages: a 12-byte header (frame number, uint32 little-endian; the page's
capture time in ms, float64 little-endian) and a JPEG. Only the newest frame waiting is analysed (older ones are
dropped), so the delay stays one analysis long however fast frames come. Each analysis is answered with a JSON
message that echoes the frame number and capture time (the page measures capture-to-drawn latency with them).
"""
from __future__ import annotations

import asyncio
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio
import cv2
import numpy as np
from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..analysis import Scanner
from ..analysis.live import Analysis, LiveAnalyzer, PushedFrames
from ..options import LiveOptions
from ..results import label_for

HEADER = struct.Struct("<Id")
MAX_FRAME_BYTES = 8 * 1024 * 1024
"""A bigger message closes the connection (1009): a 4K JPEG is well under it."""


@dataclass
class PendingFrame:
    number: int
    captured_ms: float
    jpeg: bytes
    arrival: float


class LiveService:
    """The live model shared by all viewers (one analysis at a time: the face detector is not thread-safe), and
    how many viewers may connect at once."""

    def __init__(self, scanner: Scanner, max_viewers: int = 8, options: LiveOptions | None = None,
                 allowed_origins: tuple[str, ...] = ()) -> None:
        self.scanner = scanner
        self.allowed_origins = allowed_origins
        self.max_viewers = max_viewers
        self.options = options or LiveOptions()
        self.viewers = 0
        self._model_lock = threading.Lock()

    def analyse(self, analyzer: LiveAnalyzer, frame: PendingFrame) -> tuple[Analysis | None, tuple[int, int]]:
        """Decode and analyse one frame (in a worker thread); (None, (0, 0)) for bytes that are not an image."""
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return None, (0, 0)
        with self._model_lock:
            analysis = analyzer.analyse_pushed(image, frame.number, frame.captured_ms / 1000.0, frame.arrival)
        return analysis, (image.shape[1], image.shape[0])

    def same_origin(self, socket: WebSocket) -> bool:
        """Whether a browser opened the socket from this server's own pages (or an allowed origin): WebSockets
        are not covered by CORS, so other sites' pages are refused here."""
        origin = socket.headers.get("origin")
        if origin is None or origin in self.allowed_origins:
            return True  # not a browser (no Origin), or a configured origin
        host = socket.headers.get("host", "")
        return origin.split("://", 1)[-1] == host

    async def serve(self, socket: WebSocket) -> None:
        if not self.same_origin(socket):
            await socket.close(code=1008, reason="cross-origin WebSocket refused")
            return
        if self.viewers >= self.max_viewers:
            await socket.close(code=1013, reason="too many live viewers; try again later")
            return
        await socket.accept()
        self.viewers += 1
        try:
            await LiveConnection(self, socket).run()
        finally:
            self.viewers -= 1


class LiveConnection:
    """One viewer: a receiving task keeps the newest frame, an analysing task answers it."""

    def __init__(self, service: LiveService, socket: WebSocket) -> None:
        self.service = service
        self.socket = socket
        self.analyzer = LiveAnalyzer(service.scanner, PushedFrames(), service.options)
        self.newest: PendingFrame | None = None
        self.frame_ready = asyncio.Event()
        self.received = 0
        self.dropped = 0

    async def run(self) -> None:
        """Until the viewer goes: receive frames here, answer them in a task beside."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._answer)
            await self._receive()
            group.cancel_scope.cancel()

    async def _receive(self) -> None:
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                continue  # text messages are not frames
            if len(data) > MAX_FRAME_BYTES:
                await self.socket.close(code=1009, reason="frame too large")
                return
            if len(data) <= HEADER.size:
                await self.socket.send_json({"type": "error", "detail": "a frame is a 12-byte header and a JPEG"})
                continue
            number, captured_ms = HEADER.unpack_from(data)
            self.received += 1
            if self.newest is not None:
                self.dropped += 1
            self.newest = PendingFrame(number, captured_ms, data[HEADER.size:], time.perf_counter())
            self.frame_ready.set()

    async def _answer(self) -> None:
        try:
            await self._analyse()
        except (WebSocketDisconnect, RuntimeError):  # the viewer left while an answer was on its way
            return

    async def _analyse(self) -> None:
        while True:
            await self.frame_ready.wait()
            self.frame_ready.clear()
            frame, self.newest = self.newest, None
            if frame is None:
                continue
            analysis, size = await run_in_threadpool(self.service.analyse, self.analyzer, frame)
            if analysis is None:
                await self.socket.send_json({"type": "error", "frame": frame.number,
                                             "detail": "the frame is not a decodable image"})
                continue
            await self.socket.send_json(self._message(frame, analysis, size))

    def _message(self, frame: PendingFrame, analysis: Analysis, size: tuple[int, int]) -> dict[str, Any]:
        threshold = self.analyzer.threshold
        return {
            "type": "analysis",
            "frame": frame.number,
            "captured_ms": frame.captured_ms,
            "width": size[0],
            "height": size[1],
            "threshold": threshold,
            "faces": [{"track_id": face.track_id, "box": [round(v, 1) for v in face.box],
                       "p_fake": round(face.p_fake, 4), "p_smooth": round(face.p_smooth, 4),
                       "label": label_for(face.p_smooth, threshold)} for face in analysis.faces],
            "server_ms": round(1000 * (analysis.finished - analysis.arrival), 1),
            "analysis_ms": round(1000 * analysis.duration_s, 1),
            "analyses_per_s": round(self.analyzer.analysis_fps(), 2),
            "frames_received": self.received,
            "frames_dropped": self.dropped,
        }
