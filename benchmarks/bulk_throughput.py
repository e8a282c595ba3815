"""Images per second of bulk annotation on Ray Data (1 and 2 actors) against a plain loop over ``analyze``.

All in one run, on the same images: ``--images`` JPEGs written here (scikit-image's astronaut at
scales 0.4 to 1.6, cycling), read from disk by both sides.

* loop: one :class:`~ferlite.recognizer.Recognizer` in this process, loaded and warmed up first, then
  ``analyze(path)`` over every image (read, decode, detect, crop, classify);
* bulk: :func:`ferlite.bulk.annotate` with 1 and 2 actors on a local Ray started once beforehand with
  all of this machine's cores (its start-up time is reported apart). Each bulk time is a whole
  ``annotate`` call: actors started and models loaded, the images annotated, the Parquet file
  written. The fixed cost of a job is measured as the same call on one image, per actor count.

The detector is the default, YuNet, from the file bundled in the package (nothing to fetch).

    python benchmarks/bulk_throughput.py [--images 200] [--model NAME_OR_PATH] [--batch-size 16] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ACTORS = (1, 2)


def write_images(folder: Path, n: int) -> list[Path]:
    """``n`` JPEGs of the astronaut at scales cycling over 0.4 .. 1.6."""
    import cv2
    from skimage.data import astronaut

    bgr = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    scales = (0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        s = scales[i % len(scales)]
        img = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        paths.append(folder / f"img_{i:05d}.jpg")
        cv2.imwrite(str(paths[-1]), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def loop_seconds(paths: list[Path], model: str | None) -> tuple[float, int]:
    """Seconds of ``analyze`` over every path with a warmed-up recogniser, and the faces found."""
    from ferlite.recognizer import Recognizer

    rec = Recognizer.from_pretrained(model, detector="yunet")
    rec.analyze(paths[0])
    t = time.perf_counter()
    faces = sum(len(rec.analyze(p)) for p in paths)
    seconds = time.perf_counter() - t
    rec.close()
    return seconds, faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--model", default=None, help="registered name or .tflite/.keras path (default: fp16 TFLite)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import ray

    from ferlite.bulk import annotate

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = write_images(work / "images", args.images)
        loop_s, loop_faces = loop_seconds(paths, args.model)

        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t
        rows = [{"method": "loop over analyze", "seconds": loop_s, "faces": loop_faces, "job_overhead_s": None}]
        try:
            for n in ACTORS:
                one = annotate(paths[0], work / f"one_{n}.parquet", model=args.model, detector="yunet",
                               num_actors=n, batch_size=args.batch_size)
                s = annotate(work / "images", work / f"bulk_{n}.parquet", model=args.model, detector="yunet",
                             num_actors=n, batch_size=args.batch_size)
                rows.append({"method": f"bulk, {n} actor{'s' if n > 1 else ''}", "seconds": s.seconds,
                             "faces": s.faces, "job_overhead_s": one.seconds})
        finally:
            ray.shutdown()

    for r in rows:
        r["images_per_s"] = args.images / r["seconds"]
    base = rows[0]["images_per_s"]
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, ray {ray.__version__}")
    print(f"{args.images} images, batch size {args.batch_size}; local Ray started in {ray_start:.1f} s (not counted)")
    print(f"{'method':<20} {'seconds':>8} {'images/s':>9} {'vs loop':>8} {'faces':>6} {'1-image job (s)':>16}")
    for r in rows:
        overhead = "-" if r["job_overhead_s"] is None else f"{r['job_overhead_s']:.2f}"
        print(f"{r['method']:<20} {r['seconds']:>8.2f} {r['images_per_s']:>9.1f} {r['images_per_s'] / base:>7.2f}x "
              f"{r['faces']:>6} {overhead:>16}")
    if args.json:
        args.json.write_text(json.dumps({"machine": {"platform": platform.platform(), "cores": os.cpu_count()},
                                         "images": args.images, "ray_start_s": ray_start, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
