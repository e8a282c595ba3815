"""Recognise expressions frame by frame in a video file or a webcam, draw them, optionally save the video.

Usage: python video_loop.py --video clip.mp4 --output out.mp4
       python video_loop.py --camera 0 --show            (press q to stop)
"""
import argparse
import time

import cv2

import ferlite
from ferlite.video import draw_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video file")
    source.add_argument("--camera", type=int, help="a camera index (0 is the usual webcam)")
    parser.add_argument("--output", help="write the annotated frames to this .mp4")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--show", action="store_true", help="show the frames in a window (needs a display)")
    args = parser.parse_args(argv)

    recognizer = ferlite.Recognizer.from_pretrained()
    cap = cv2.VideoCapture(args.video if args.video is not None else args.camera)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {args.video or f'camera {args.camera}'}")
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0  # cameras may report 0
    writer, frames, start = None, 0, time.perf_counter()
    try:
        while args.max_frames is None or frames < args.max_frames:
            ok, frame_bgr = cap.read()
            if not ok:
                break  # end of the video (or the camera stopped)
            results = recognizer.analyze(frame_bgr, color="bgr")  # OpenCV frames are BGR
            frames += 1
            rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
            annotated = draw_results(rgb, results, fps=frames / (time.perf_counter() - start))
            if args.output:
                if writer is None:  # open the writer once the frame size is known
                    h, w = annotated.shape[:2]
                    writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps_in, (w, h))
                writer.write(annotated)
            if args.show:
                cv2.imshow("ferlite", annotated)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if args.show:
            cv2.destroyAllWindows()
        recognizer.close()
    elapsed = time.perf_counter() - start
    print(f"{frames} frames in {elapsed:.1f} s: {frames / max(elapsed, 1e-9):.1f} frames/s")
    return frames


if __name__ == "__main__":
    main()
