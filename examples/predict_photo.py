"""Find the faces in one photo and print each face's box and top emotion.

Usage: python predict_photo.py photo.jpg [--output annotated.png]
"""
import argparse

import cv2

import ferlite
from ferlite.video import draw_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", help="an image file (PNG, JPEG, ...)")
    parser.add_argument("--output", help="write the photo with boxes and emotions drawn on it here")
    args = parser.parse_args(argv)

    # The default pretrained model (float16 TFLite, no TensorFlow needed) with the MediaPipe face detector.
    recognizer = ferlite.Recognizer.from_pretrained()
    image = ferlite.read_image(args.photo)  # RGB uint8
    results = recognizer.analyze(image)  # one dict per face, largest first
    if not results:
        print(f"no face found in {args.photo}")
    for i, face in enumerate(results):
        x, y, w, h = face["box"]
        print(f"face {i}: box x={x} y={y} w={w} h={h}  {face['top']} ({face['emotions'][face['top']]:.0%})")

    if args.output:
        cv2.imwrite(args.output, draw_results(image, results))  # draw_results returns BGR, as OpenCV writes it
        print(f"annotated image written to {args.output}")
    return results


if __name__ == "__main__":
    main()
