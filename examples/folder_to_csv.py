"""Analyse every image in a folder and write one CSV row per face: file, face, box, detector score, probabilities.

Usage: python folder_to_csv.py photos/ --output emotions.csv
"""
import argparse
import csv
from pathlib import Path

import ferlite


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of images")
    parser.add_argument("--output", required=True, help="the CSV file to write")
    args = parser.parse_args(argv)

    recognizer = ferlite.Recognizer.from_pretrained()
    rows, skipped = [], []
    for path in sorted(Path(args.folder).iterdir()):
        if not path.is_file():
            continue
        try:
            image = ferlite.read_image(path)
        except ValueError as err:  # not an image, or a damaged one: report it and go on
            print(f"skipped: {err}")
            skipped.append(path.name)
            continue
        for i, face in enumerate(recognizer.analyze(image)):
            probs = [f"{face['emotions'][c]:.4f}" for c in recognizer.classes]
            rows.append([path.name, i, *face["box"], f"{face['score']:.3f}", *probs])

    with open(args.output, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "face", "x", "y", "w", "h", "score", *recognizer.classes])
        out.writerows(rows)
    print(f"{len(rows)} faces written to {args.output}; {len(skipped)} file(s) skipped")
    return rows, skipped


if __name__ == "__main__":
    main()
