"""``ferlite serve``: the HTTP API and the live browser page (the ``serve`` extra: FastAPI and uvicorn)."""

from __future__ import annotations

import ipaddress
import logging

import click

from ferlite.cli._once import OnceCommand
from ferlite.cli._options import balance_option
from ferlite.detect import DETECTORS
from ferlite.images import MAX_PIXELS

TOKEN_ENV = "FERLITE_SERVE_TOKEN"
log = logging.getLogger("ferlite.serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1): reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(cls=OnceCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any but a loopback address needs a token (or --no-auth).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free one; the log says which).")
@click.option("--model", default=None,
              help="A registered .tflite model name or alias (fast), or a .tflite path  "
                   "[default: ferplus-mfn-1.0-fp16]. Serving runs LiteRT only: no .keras models, no TensorFlow.")
@click.option("--detector", type=click.Choice(DETECTORS), default="auto", show_default=True, help="Face detector.")
@click.option("--min-score", type=click.FloatRange(0.0, 1.0), default=None,
              help="Minimum face detection score  [default: the library's, as for ferlite demo]")
@balance_option()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Images analysed at once, each by its own recognizer and thread.")
@click.option("--queue-size", type=click.IntRange(0, 4096), default=8, show_default=True,
              help="Requests that may wait for a worker; one more is answered 503 with Retry-After.")
@click.option("--max-upload-mb", type=click.FloatRange(0.001, 1000), default=10.0, show_default=True,
              help="Largest request body, in MB (10^6 bytes); larger ones get 413.")
@click.option("--max-megapixels", type=click.FloatRange(0.01, 1000), default=MAX_PIXELS / 1e6, show_default=True,
              help="Largest picture decoded; a larger JPEG is decoded reduced, other formats get 422.")
@click.option("--read-timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds a client has to send a whole request body (408 after).")
@click.option("--max-connections", type=click.IntRange(1, 100_000), default=64, show_default=True,
              help="Connections open at once (camera viewers included); more get 503.")
@click.option("--token", envvar=TOKEN_ENV, default=None, show_envvar=True,
              help="A secret every request must carry (Authorization: Bearer TOKEN, or ?token=TOKEN in a browser). "
                   f"Prefer the environment variable {TOKEN_ENV}: a command line is visible to other users.")
@click.option("--no-auth", is_flag=True,
              help="Serve a non-loopback --host without a token: anyone who reaches the port may use the server.")
@click.option("--camera", default=None,
              help="Show this device's camera on the page: a camera index (0), or a video file standing in for a "
                   "camera (played at its frame rate, looped).")
@click.option("--smooth-alpha", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="--camera: weight of the newest frame in the smoothing of each face's probabilities.")
def serve_cmd(host, port, model, detector, min_score, balance, workers, queue_size, max_upload_mb, max_megapixels,
              read_timeout, max_connections, token, no_auth, camera, smooth_alpha) -> None:
    """Serve the JSON API (POST /v1/analyze, POST /v1/predict, GET /v1/models, GET /healthz) and the live browser
    page (GET /) over HTTP, until SIGTERM or Ctrl-C. Listens on 127.0.0.1 unless told otherwise."""
    loopback = is_loopback(host)
    if no_auth and token:
        raise click.UsageError(f"--no-auth and a token (--token or {TOKEN_ENV}) contradict each other: give one")
    if not (loopback or token or no_auth):
        raise click.UsageError(f"--host {host} is not a loopback address: any machine that reaches it could use the "
                               f"server. Give a token (--token, or better the environment variable {TOKEN_ENV}), "
                               "or --no-auth to serve without one")
    from ferlite.serve.app import ServeConfig, create_app  # without the serve extra: one line naming it (cli._guard)
    from ferlite.serve.camera import parse_source
    from ferlite.serve.guard import LOOPBACK_NAMES
    from ferlite.serve.runner import configure_logging, listen, run

    try:
        config = ServeConfig(model=model, detector=detector, min_score=min_score, balance=balance, workers=workers,
                             queue_size=queue_size, max_bytes=round(max_upload_mb * 1e6),
                             max_pixels=round(max_megapixels * 1e6), read_timeout=read_timeout, token=token,
                             allowed_hosts=LOOPBACK_NAMES | {host.lower()} if loopback else None,
                             camera=None if camera is None else parse_source(camera), smooth_alpha=smooth_alpha)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging()
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        app = create_app(config)
    except (FileNotFoundError, ValueError, OSError, ImportError, RuntimeError) as exc:
        sock.close()
        raise click.ClickException(str(exc)) from exc
    service = app.state.service
    shown = f"[{host}]" if ":" in host else host
    log.info("model %s (%s), detector %s, %d worker(s), queue %d, body limit %s MB%s",
             service.serving["file"], service.serving["backend"], service.serving["detector"], workers, queue_size,
             f"{max_upload_mb:g}", f", {service.feed.name} on the page" if service.feed else "")
    log.info("listening on http://%s:%d/ (%s)", shown, sock.getsockname()[1],
             "token required: open /?token=TOKEN in a browser" if token else
             "no token: loopback only" if loopback else "NO TOKEN: open to anyone who reaches this port")
    stopped_by = run(app, sock, max_connections=max_connections)
    log.info("stopped%s: %d image(s) handled, %d request(s) refused as busy", f" by {stopped_by}" if stopped_by else "",
             service.queue.handled, service.queue.refused)
