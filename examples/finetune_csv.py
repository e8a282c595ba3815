"""Fine-tune the default pretrained model on your own labelled faces, given as CSV files.

CSV format: a header ``image,<class1>,<class2>,...`` then one row per image: its path (relative to the CSV)
and one number per class (annotator votes, or a one-hot 0/1). Faces are cropped already; any size or colour.

Usage: python finetune_csv.py --train train.csv --val val.csv --epochs 10 --output-dir my_model
"""
import argparse
from pathlib import Path

import ferlite
from ferlite.training.loop import TrainConfig, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="the training CSV")
    parser.add_argument("--val", required=True, help="the validation CSV (same class columns)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--freeze-backbone", type=int, default=0,
                        help="train only the new classifier head for this many first epochs (< epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output-dir", required=True, help="where model.keras and its sidecar are written")
    args = parser.parse_args(argv)

    # init_weights="default" starts from the pretrained FER+ model; its classifier head is replaced
    # when your classes differ (a warning says so), the rest of the network keeps what it learnt.
    cfg = TrainConfig(train=args.train, val=args.val, epochs=args.epochs, batch_size=args.batch_size,
                      init_weights="default", freeze_backbone=args.freeze_backbone, output_dir=args.output_dir,
                      warmup_epochs=0, lr=1e-3)
    train(cfg)

    # The result loads like any pretrained model.
    recognizer = ferlite.Recognizer.from_pretrained(Path(args.output_dir) / "model.keras")
    print("classes:", ", ".join(recognizer.classes))
    return recognizer


if __name__ == "__main__":
    main()
