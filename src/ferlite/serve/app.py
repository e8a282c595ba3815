"""The ASGI application of ``ferlite serve``: :class:`ServeConfig` and :func:`create_app` (FastAPI).

Routes (the OpenAPI schema is at ``/openapi.json``):

* ``POST /v1/analyze``: an image (the body, or the ``file`` field of a form) -> its faces, exactly as
  :meth:`ferlite.Recognizer.analyze` gives them for that image file, with the picture's width and height.
* ``POST /v1/predict``: a face crop -> its class probabilities and top class (:meth:`ferlite.Recognizer.predict`).
* ``GET /v1/models``: the registered models, as ``ferlite weights list`` shows them, and the one served.
* ``GET /v1/camera`` and ``GET /v1/camera/stream.mjpg``: with ``camera`` set, the device's camera: the newest
  smoothed results, and the annotated frames as an MJPEG stream.
* ``GET /healthz``; ``GET /``: the browser page (plain HTML/JS shipped in the package, no CDN).

Models run on LiteRT only: a ``.keras`` model is refused, so serving never imports TensorFlow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

import ferlite
from ferlite.detect import DETECTORS
from ferlite.images import MAX_PIXELS
from ferlite.recognizer import Recognizer, scale_results
from ferlite.serve.camera import CameraFeed
from ferlite.serve.guard import Guard
from ferlite.serve.uploads import (
    ACCEPTED_TYPES,
    RequestError,
    check_content_type,
    decode_image,
    image_from_body,
    read_body,
)
from ferlite.serve.work import QueueFull, WorkQueue

__all__ = ["ServeConfig", "Service", "create_app", "load_recognizer"]

log = logging.getLogger("ferlite.serve")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")
_STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
# The page loads nothing from elsewhere, is framed by no one, and sends no Referer (its URL may hold the token).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class ServeConfig:
    """What ``ferlite serve`` serves, and its limits.

    Attributes:
        model: a registered ``.tflite`` model name or alias, or a ``.tflite`` path (None: the default inference
            model). ``.keras`` models are refused: serving runs on LiteRT, without TensorFlow.
        detector: one of :data:`ferlite.detect.DETECTORS`.
        min_score: minimum face detection score (None: the library's default).
        balance: the class-balanced decision's strength (None: the model's recorded one; see
            :class:`~ferlite.recognizer.Recognizer`).
        workers: recognizers working at once, each in its own thread.
        queue_size: requests that may wait for a worker; one more gets 503 with ``Retry-After``.
        max_bytes: the largest request body (413 past it).
        max_pixels: the largest picture decoded (a larger JPEG is decoded reduced, see :mod:`ferlite.images`).
        read_timeout: seconds a client has to send a whole body (408 after).
        token: the token every request must carry (None: no token).
        allowed_hosts: the names a request's ``Host`` may give (None: any); see :mod:`ferlite.serve.guard`.
        camera: a camera index, or a video file standing in for one, shown on the page (None: no camera).
        smooth_alpha: the camera's smoothing weight of the newest frame (:class:`ferlite.video.EmotionSmoother`).
    """

    model: str | None = None
    detector: str = "auto"
    min_score: float | None = None
    balance: float | None = None
    workers: int = 1
    queue_size: int = 8
    max_bytes: int = 10_000_000
    max_pixels: int = MAX_PIXELS
    read_timeout: float = 30.0
    token: str | None = field(default=None, repr=False)  # never in a printed configuration
    allowed_hosts: frozenset[str] | None = None
    camera: int | str | None = None
    smooth_alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; expected one of: {', '.join(DETECTORS)}")
        for name, least in (("workers", 1), ("queue_size", 0), ("max_bytes", 1), ("max_pixels", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if not self.read_timeout > 0:
            raise ValueError(f"read_timeout must be > 0 seconds, got {self.read_timeout!r}")
        if self.token is not None and not TOKEN_PATTERN.fullmatch(self.token):
            others = ", some of them other characters" if re.search(r"[^A-Za-z0-9._~+/=-]", self.token) else ""
            raise ValueError(f"the token must be at least 16 characters, letters, digits and -._~+/= (got "
                             f"{len(self.token)} character(s){others}); make one with: "
                             "python -c 'import secrets; print(secrets.token_urlsafe())'")


def load_recognizer(config: ServeConfig) -> Recognizer:
    """A :class:`~ferlite.recognizer.Recognizer` of ``config``'s model and detector, both loaded now.

    Raises:
        ValueError: the model is a ``.keras`` file (serving runs ``.tflite`` models on LiteRT only), or unusable.
        FileNotFoundError, OSError: the model cannot be found or had.
    """
    from ferlite.weights import resolve_model

    path = None
    if config.model is not None:
        path = resolve_model(config.model)
        if path.suffix != ".tflite":
            raise ValueError(f"ferlite serve runs .tflite models on LiteRT, without TensorFlow; got {path.name} "
                             f"for --model {config.model!r}: expected a .tflite model, e.g. ferplus-mfn-1.0-fp16 "
                             "or fast (`ferlite weights list`), or export yours with `ferlite export`")
    score = {} if config.min_score is None else {"min_score": config.min_score}  # None: the library's default
    rec = Recognizer.from_pretrained(path, detector=config.detector, balance=config.balance, **score)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        rec.detector  # noqa: B018  (loads the detector now: its errors and fallbacks at startup, not on a request)
    for w in caught:
        log.warning("%s", w.message)
    return rec


class Problem(BaseModel):
    """An error: what was received and what was expected."""

    detail: str


class FaceResult(BaseModel):
    """One face, as `Recognizer.analyze` gives it."""

    box: tuple[int, int, int, int] = Field(description="x, y, width, height, in pixels of the image")
    score: float = Field(description="detection score")
    keypoints: list[tuple[float, float]] = Field(description="(x, y) of the detector's keypoints (eyes, nose, ...)")
    emotions: dict[str, float] = Field(description="class probabilities in class order, summing to 1")
    top: str = Field(description="the most probable class")


class AnalyzeResult(BaseModel):
    """The faces of an image, largest first."""

    width: int = Field(description="the picture's width in pixels")
    height: int = Field(description="the picture's height in pixels")
    faces: list[FaceResult]


class PredictResult(BaseModel):
    """The expression of one face crop."""

    emotions: dict[str, float] = Field(description="class probabilities in class order, summing to 1")
    top: str


class CameraResult(BaseModel):
    """The newest analysed frame of the server's camera, with smoothed probabilities."""

    frame: int = Field(description="frame number, from 0")
    fps: float | None = Field(description="frames analysed per second (None before the second frame)")
    width: int
    height: int
    faces: list[FaceResult]


class ModelEntry(BaseModel):
    """A registered file, as ``ferlite weights list`` shows it."""

    name: str
    kind: str = Field(description="keras, tflite or detector")
    description: str
    params: int | None
    macs: int | None = Field(description="multiply-adds of one 48x48 face")
    size: int | None = Field(description="bytes of the file")
    metrics: dict[str, float | str] = Field(description="FER2013Valid figures as the registry records them")
    where: str = Field(description="cached, bundled, remote or unavailable")
    classes: list[str] | None
    servable: bool = Field(description="a .tflite model this server could run")


class ModelsResult(BaseModel):
    """The registered models and the one served."""

    serving: dict[str, str] = Field(description="file, backend and detector of what this server runs")
    aliases: dict[str, str]
    models: list[ModelEntry]


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "image/*": _BINARY, "application/octet-stream": _BINARY,
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}}},
    "description": "the image: the body (PNG, JPEG, BMP, TIFF, WebP) or the `file` field of a form"}}
_ERRORS = {401: {"model": Problem, "description": "a token is needed and the request carries none, or a wrong one"},
           408: {"model": Problem, "description": "the body did not arrive within the read timeout"},
           413: {"model": Problem, "description": "the body is over the size limit"},
           415: {"model": Problem, "description": f"the Content-Type is none of {', '.join(ACCEPTED_TYPES)}"},
           422: {"model": Problem, "description": "not a readable image (empty, truncated, corrupt, too large), "
                                                  "with the library's message"},
           503: {"model": Problem, "description": "every place of the work queue is taken: retry after the "
                                                  "Retry-After header's seconds"}}


def _analyze(rec: Recognizer, data: bytes, max_pixels: int) -> dict:
    rgb, size = decode_image(data, max_pixels=max_pixels)
    return {"width": size[0], "height": size[1], "faces": scale_results(rec.analyze(rgb), rgb.shape, size)}


def _predict(rec: Recognizer, data: bytes, max_pixels: int) -> dict:
    emotions = rec.predict(decode_image(data, max_pixels=max_pixels)[0])
    return {"emotions": emotions, "top": max(emotions, key=emotions.get)}


class Service:
    """What the routes share: the configuration, the work queue, the camera feed, what is served."""

    def __init__(self, config: ServeConfig) -> None:
        if not hasattr(os, "memfd_create"):
            raise RuntimeError("ferlite serve decodes uploads in memory with os.memfd_create, which this platform "
                               "lacks (expected Linux: a Raspberry Pi, a server, WSL)")
        self.config = config
        recognizers = [load_recognizer(config) for _ in range(config.workers)]
        first = recognizers[0]
        self.serving = {"file": first.predictor.path.name, "backend": first.predictor.backend,
                        "detector": first.detector.name}
        self.feed = None
        if config.camera is not None:
            self.feed = CameraFeed(config.camera, load_recognizer(config), alpha=config.smooth_alpha)
        self.queue = WorkQueue(recognizers, config.queue_size)

    def halt(self) -> None:
        """Begin stopping, at once (from a signal handler): camera streams end, so the server can drain."""
        if self.feed is not None:
            self.feed.halt()

    def close(self) -> None:
        """Stop the camera and the workers (the work admitted is finished first) and release their models."""
        if self.feed is not None:
            self.feed.stop()
        self.queue.close()

    async def image(self, request: Request) -> bytes:
        """The image of a request: content type checked (415), refused at once if the queue is full (503), body
        read within the size limit (413) and the read timeout (408), a form's ``file`` field taken."""
        content_type = request.headers.get("content-type")
        media = check_content_type(content_type)
        self.queue.check()
        body = await read_body(request.stream(), declared=request.headers.get("content-length"),
                               max_bytes=self.config.max_bytes, timeout=self.config.read_timeout)
        return image_from_body(body, media, content_type)

    async def answer(self, request: Request, fn: Callable[[Recognizer, bytes, int], dict]) -> dict:
        """``fn(recognizer, image bytes, max_pixels)`` for a request (see :meth:`image`), run by the work queue;
        dropped (499, in the log only) if the client goes away before it is done."""
        job = asyncio.ensure_future(self.queue.run(fn, await self.image(request), self.config.max_pixels))
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not job.done():
            job.cancel()
            raise RequestError(499, "the client closed the connection before its answer was ready")
        return job.result()

    def camera(self) -> CameraFeed:
        """The camera feed; 404 when the server has none."""
        if self.feed is None:
            raise RequestError(404, "this server shows no camera: start it with --camera N (a camera index, or a "
                                    "video file standing in for one)")
        return self.feed


async def _disconnected(request: Request) -> None:
    """Return when the client of ``request`` (whose body has been read) closes its connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _static(name: str) -> bytes:
    return resources.files("ferlite.serve").joinpath("static", name).read_bytes()


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application serving ``config`` (defaults: the default model, no token, no camera).

    The models and the camera are loaded here, so that their errors come before any request.
    """
    config = config or ServeConfig()
    service = Service(config)
    page, assets = _static("index.html"), {name: _static(name) for name in _STATIC}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if service.feed is not None:
            service.feed.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(service.close)

    app = FastAPI(title="ferlite", version=ferlite.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Facial expressions of the faces in images, with tiny FER+ models on LiteRT. "
                              "Errors come as JSON `{\"detail\": message}`.")
    app.state.service = service
    app.add_middleware(Guard, token=config.token, allowed_hosts=config.allowed_hosts)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, exc.status)

    @app.exception_handler(QueueFull)
    async def busy(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503, headers={"Retry-After": str(exc.retry_after)})

    @app.post("/v1/analyze", response_model=AnalyzeResult, openapi_extra=_IMAGE_BODY, responses=_ERRORS,
              summary="Faces and their expressions in an image")
    async def analyze(request: Request) -> dict:
        """Detect the faces of an image and give each one's box, detection score, keypoints, class probabilities
        and top class, largest face first: what `Recognizer.analyze` gives for the same image file."""
        return await service.answer(request, _analyze)

    @app.post("/v1/predict", response_model=PredictResult, openapi_extra=_IMAGE_BODY, responses=_ERRORS,
              summary="The expression of one face crop")
    async def predict(request: Request) -> dict:
        """Class probabilities of an image that is one face (no detection): what `Recognizer.predict` gives."""
        return await service.answer(request, _predict)

    @app.get("/v1/models", response_model=ModelsResult, summary="Registered models and the one served")
    def models() -> dict:
        """The registered files as `ferlite weights list` shows them, the aliases, and what this server runs."""
        from ferlite import weights

        entries = [{"name": e.name, "kind": e.kind, "description": e.description, "params": e.params,
                    "macs": e.macs, "size": e.size, "metrics": e.metrics, "where": weights.status(e.name),
                    "classes": list(e.classes) if e.classes else None, "servable": e.kind == "tflite"}
                   for e in weights.list_weights()]
        return {"serving": service.serving, "aliases": dict(weights.ALIASES), "models": entries}

    @app.get("/v1/camera", response_model=CameraResult, responses={404: {"model": Problem}, 503: {"model": Problem}},
             summary="The newest results of the server's camera")
    async def camera() -> dict:
        """The newest frame's faces, with the demo's tracking and smoothing. The camera is read while it is
        polled or streamed, and for 2 s after."""
        feed = service.camera()
        idle, current = not feed.active, feed.latest()
        feed.poll()
        if current is None or idle:
            try:
                current = await asyncio.wait_for(feed.next_frame(-1 if current is None else current[0]), 10)
            except asyncio.TimeoutError:
                current = None
        if current is None or feed.error:
            raise RequestError(503, feed.error or f"{feed.name} gave no frame within 10 s")
        return current[2]

    @app.get("/v1/camera/stream.mjpg", response_class=StreamingResponse, summary="The server's camera, annotated",
             responses={200: {"content": {"multipart/x-mixed-replace": {}},
                              "description": "an MJPEG stream: JPEG frames with boxes, top expression and bars"},
                        404: {"model": Problem}})
    async def camera_stream() -> StreamingResponse:
        """The annotated frames of the server's camera as they come (a slow viewer skips frames)."""
        feed = service.camera()

        async def parts():
            with feed.watching():
                n = -1
                while (current := await feed.next_frame(n)) is not None:
                    n, jpeg = current[0], current[1]
                    yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    @app.get("/healthz", summary="Liveness, what is served, and the work queue")
    def healthz() -> dict:
        """`status` ok, the version, the model file, backend and detector, the camera (or null) and the queue."""
        return {"status": "ok", "version": ferlite.__version__, **service.serving,
                "camera": service.feed.name if service.feed else None, "work": service.queue.stats()}

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in assets:
            raise RequestError(404, f"no static file {name!r}; there are: {', '.join(sorted(assets))}")
        return Response(assets[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)

    return app

