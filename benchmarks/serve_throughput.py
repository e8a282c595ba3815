"""Requests per second and latency of ``ferlite serve``'s ``POST /v1/analyze``, beside ``Recognizer.analyze``
in-process, in the same run, on the same 640x480 JPEG photos.

* server: ``ferlite serve`` in a subprocess on 127.0.0.1 (``--workers``, a queue large enough that no request is
  refused), warmed up, then ``--requests`` requests from 1, 4 and 16 concurrent clients (threads of this process,
  each with its own keep-alive connection; stdlib ``http.client``), cycling over the photos;
* in-process: one :class:`~ferlite.recognizer.Recognizer` per worker in threads of this process, given the same
  JPEG bytes and doing the server's work (decode with the library's checked reader, then ``analyze``).

The photos are made from scikit-image's: the astronaut (one face), her face pasted twice on a blurred coffee
picture (two faces), and the coffee picture (no face). Overhead = in-process requests/s / server requests/s.
The helpers (:class:`ServerProcess`, :func:`post_many`, :func:`photos`) are also those of ``tests/test_serve.py``.

    python benchmarks/serve_throughput.py [--requests 60] [--clients 1 4 16] [--workers 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

LISTENING = re.compile(r"listening on (http://[^/\s]+/)")
SERVE = [sys.executable, "-c", "import sys; from ferlite.cli import main; sys.exit(main(['serve', *sys.argv[1:]]))"]


def photos() -> dict[str, np.ndarray]:
    """Three 640x480 RGB photos: ``one_face`` (the astronaut), ``two_faces`` (her face twice), ``no_face``."""
    import cv2
    from skimage.data import astronaut, coffee

    her, cup = astronaut(), coffee()
    one = cv2.resize(her[:384], (640, 480), interpolation=cv2.INTER_LINEAR)
    background = cv2.GaussianBlur(cv2.resize(cup, (640, 480), interpolation=cv2.INTER_AREA), (0, 0), 6)
    face = her[20:230, 140:310]  # her head, 170x210
    two = background.copy()
    for x in (90, 380):
        two[150:360, x:x + 170] = face
    return {"one_face": one, "two_faces": two, "no_face": cv2.resize(cup, (640, 480))}


def encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    """An RGB array as the bytes of an image file (``.jpg`` at quality 90, ``.png``...)."""
    import cv2

    ok, data = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {rgb.shape} array as {ext}")
    return data.tobytes()


class ServerProcess:
    """``ferlite serve ARGS --port 0`` in a subprocess, its output in ``log_path``; ``url`` once it listens.

    A context manager: on leaving, it is stopped with SIGTERM (:meth:`stop`).
    """

    def __init__(self, *args: str, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 120.0) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([*SERVE, "--port", "0", *args], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        deadline = time.monotonic() + timeout
        while (found := LISTENING.search(self.log())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ferlite serve {' '.join(args)} did not start (exit status "
                                   f"{self.process.returncode}):\n{self.log()}")
            time.sleep(0.05)
        self.url = found.group(1)
        self.host, self.port = self.url[len("http://"):-1].rsplit(":", 1)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def log(self) -> str:
        """What the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` (if it still runs) and wait for it: its exit status (it is killed after ``timeout`` s)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Reply(NamedTuple):
    """One request's answer: status (0: no answer, ``error`` says why), seconds, the ``Retry-After`` header."""

    status: int
    seconds: float
    retry_after: str | None = None
    error: str | None = None


def post_many(server: ServerProcess, bodies: list[bytes], *, clients: int, total: int,
              headers: dict[str, str] | None = None, path: str = "/v1/analyze") -> list[Reply]:
    """``total`` POSTs of ``bodies`` (cycling, as JPEG) from ``clients`` threads, each with one keep-alive
    connection (reopened when the server closes it); every request's :class:`Reply`, in no particular order."""
    counter, lock, replies = itertools.count(), threading.Lock(), []
    head = {"Content-Type": "image/jpeg", **(headers or {})}

    def client() -> None:
        conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
        while (i := next(counter)) < total:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=bodies[i % len(bodies)], headers=head)
                response = conn.getresponse()
                response.read()
                reply = Reply(response.status, time.perf_counter() - t0, response.getheader("Retry-After"))
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                reply = Reply(0, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
            with lock:
                replies.append(reply)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def summary(seconds: list[float], wall: float) -> dict[str, float]:
    """Requests per second over ``wall`` seconds, and the p50 and p99 latencies (ms) of ``seconds``."""
    ms = 1000 * np.asarray(seconds)
    return {"rps": len(seconds) / wall, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def in_process(bodies: list[bytes], *, workers: int, total: int, model: str | None) -> dict[str, float]:
    """The server's work without the server: ``total`` decodes + analyses (the server's own function, at its
    default pixel budget) by ``workers`` threads."""
    from ferlite.images import MAX_PIXELS
    from ferlite.recognizer import Recognizer
    from ferlite.serve.app import _analyze

    recognizers = [Recognizer.from_pretrained(model) for _ in range(workers)]
    for rec in recognizers:  # warm up: the detector loaded, the interpreters run once
        _analyze(rec, bodies[0], MAX_PIXELS)
    counter, lock, seconds = itertools.count(), threading.Lock(), []

    def work(rec: Recognizer) -> None:
        while (i := next(counter)) < total:
            t0 = time.perf_counter()
            _analyze(rec, bodies[i % len(bodies)], MAX_PIXELS)
            with lock:
                seconds.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(rec,)) for rec in recognizers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(seconds, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="requests per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--workers", type=int, default=1, help="the server's --workers, and the in-process threads")
    parser.add_argument("--model", default=None, help="a .tflite model name or path (default: the default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    bodies = [encode(rgb) for rgb in photos().values()]
    local = in_process(bodies, workers=args.workers, total=args.requests, model=args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        serve_args = ["--workers", str(args.workers), "--queue-size", str(max(args.clients) * 2)]
        with ServerProcess(*serve_args, *(["--model", args.model] if args.model else []),
                           log_path=Path(tmp) / "serve.log") as server:
            post_many(server, bodies, clients=1, total=2 * len(bodies))  # warm up
            for clients in args.clients:
                t0 = time.perf_counter()
                replies = post_many(server, bodies, clients=clients, total=args.requests)
                wall = time.perf_counter() - t0
                bad = [r for r in replies if r.status != 200]
                if bad:
                    raise RuntimeError(f"{len(bad)} request(s) failed, e.g. {bad[0]}")
                rows.append({"clients": clients, **summary([r.seconds for r in replies], wall)})
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "workers": args.workers, "requests": args.requests, "in_process": local, "server": rows}
    print(f"{args.requests} requests per row, photos 640x480 JPEG (one face, two faces, none), "
          f"--workers {args.workers}, {os.cpu_count()} CPU(s)")
    print(f"{'':>18} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'overhead':>9}")
    print(f"{'in-process':>18} {local['rps']:7.1f} {local['p50_ms']:8.1f} {local['p99_ms']:8.1f} {'1.00x':>9}")
    for row in rows:
        print(f"{'server, ' + str(row['clients']) + ' client(s)':>18} {row['rps']:7.1f} {row['p50_ms']:8.1f} "
              f"{row['p99_ms']:8.1f} {local['rps'] / row['rps']:8.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
