"""The CamVid report of docs/camvid.md from a training run and its test scores.

    python examples/camvid_report.py RUN_DIR SCORES_JSON --data-root ../shared/data/camvid --out docs

RUN_DIR is a run of ``python -m minifcn.train --data camvid``; SCORES_JSON is what
``python -m minifcn.evaluate --split test --json ...`` wrote for its checkpoint. Prints the
scores beside the published FCN-8s figures as a Markdown table, and draws into --out:
``camvid_curves.png`` (train loss and validation mean IoU against wall time) and
``camvid_test.png`` (test images, ground truth and predictions).
"""

import argparse
import csv
import json
import sys
from pathlib import Path

from minifcn.data import open_dataset
from minifcn.inference import load_trained_model, predict_labels
from minifcn.viz import save_learning_curves, save_prediction_grid

# FCN-8s on the 11-class CamVid test set, as tabulated in later papers (see ../shared/data/README.md);
# keyed by the class names of classes.txt.
PUBLISHED_IOU = {"Building": 77.8, "Tree": 71.0, "Sky": 88.7, "Car": 76.1, "SignSymbol": 32.7, "Road": 91.2,
                 "Pedestrian": 41.7, "Fence": 24.4, "Pole": 19.9, "Pavement": 72.7, "Bicyclist": 31.0}
PUBLISHED_MEAN_IOU, PUBLISHED_PIXEL_ACCURACY = 57.0, 88.0


def scores_table(scores):
    """Markdown: the four scores, then per-class IoU, ours beside the published FCN-8s."""
    lines = ["| | minifcn | published FCN-8s |", "|---|---:|---:|",
             f"| pixel (global) accuracy | {scores['pixel_accuracy'] * 100:.1f} | {PUBLISHED_PIXEL_ACCURACY} |",
             f"| mean accuracy | {scores['mean_accuracy'] * 100:.1f} | |",
             f"| **mean IoU** | **{scores['mean_iou'] * 100:.1f}** | **{PUBLISHED_MEAN_IOU}** |",
             f"| frequency-weighted IoU | {scores['frequency_weighted_iou'] * 100:.1f} | |"]
    for name, iou in zip(scores["class_names"], scores["per_class_iou"]):
        lines.append(f"| IoU {name} | {iou * 100:.1f} | {PUBLISHED_IOU.get(name, '')} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run directory of python -m minifcn.train")
    parser.add_argument("scores", type=Path, help="test scores JSON written by python -m minifcn.evaluate")
    parser.add_argument("--data-root", type=Path, required=True, help="the CamVid folder")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the two pictures")
    parser.add_argument("--images", type=int, default=4, help="test images in the picture")
    args = parser.parse_args(argv)

    scores = json.loads(args.scores.read_text())
    print(scores_table(scores))
    rows = list(csv.DictReader(open(args.run / "log.csv")))
    args.out.mkdir(parents=True, exist_ok=True)
    save_learning_curves(rows, args.out / "camvid_curves.png", against="minutes",
                         reference_iou=(PUBLISHED_MEAN_IOU / 100, "published FCN-8s (test)"))

    model, metadata = load_trained_model(scores["weights"])
    test_set = open_dataset("camvid", args.data_root, "test")
    shown = [round(k * (len(test_set) - 1) / max(args.images - 1, 1)) for k in range(args.images)]  # spread over the drive
    images = [test_set[index][0] for index in shown]
    truths = [test_set[index][1] for index in shown]
    predictions = [predict_labels(model, image, metadata["preprocessing"], "cpu") for image in images]
    save_prediction_grid(images, truths, predictions, test_set.class_names, test_set.class_colors,
                         args.out / "camvid_test.png", ignore_index=test_set.ignore_index)
    print(f"wrote {args.out / 'camvid_curves.png'} and {args.out / 'camvid_test.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
