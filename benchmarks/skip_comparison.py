"""FCN-32s, FCN-16s and FCN-8s trained with the same budget: their scores side by side and one picture.

    python -m minifcn.train --arch fcn32s --out runs/fcn32s     # likewise fcn16s and fcn8s,
    python -m minifcn.train --arch fcn16s --out runs/fcn16s     # every other option the same
    python -m minifcn.train --arch fcn8s  --out runs/fcn8s
    python benchmarks/skip_comparison.py runs/fcn32s runs/fcn16s runs/fcn8s --out docs/skips.png

Prints a Markdown table of each run's best checkpoint (best.npz) scored again on the run's
validation split, with per-class IoU, and draws, for a few validation images,
image / ground truth / each model's prediction in one figure.
"""

import argparse
import csv
import sys
from pathlib import Path


from minifcn.data import BatchLoader
from minifcn.inference import evaluate_model, load_trained_model, predict_labels
from minifcn.training import TrainingConfig, open_splits
from minifcn.viz import save_label_grid


def best_row(run_dir):
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    return max(rows, key=lambda row: float(row["mean_iou"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of python -m minifcn.train")
    parser.add_argument("--out", type=Path, default=Path("skips.png"), help="the picture (PNG)")
    parser.add_argument("--images", type=int, default=4, help="validation images in the picture")
    args = parser.parse_args(argv)

    models, names = [], []
    config = None
    print("| model | iterations | pixel acc. | mean acc. | mean IoU | f.w. IoU | per-class IoU |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for run_dir in args.runs:
        config = TrainingConfig.from_json((run_dir / "config.json").read_text())
        model, metadata = load_trained_model(run_dir / "best.npz")
        _, val_set = open_splits(config)
        loader = BatchLoader(val_set, config.batch_size, metadata["preprocessing"], shuffle=False)
        scores, _ = evaluate_model(model, loader, val_set.num_classes, val_set.ignore_index, "cpu", progress=False)
        row = best_row(run_dir)
        per_class = ", ".join(f"{name} {iou:.2f}" for name, iou in zip(val_set.class_names, scores["per_class_iou"]))
        name = "FCN-" + config.arch[3:]
        print(f"| {name} | {row['iteration']} | {scores['pixel_accuracy']:.3f} | {scores['mean_accuracy']:.3f} | {scores['mean_iou']:.3f} "
              f"| {scores['frequency_weighted_iou']:.3f} | {per_class} |")
        models.append((model, metadata["preprocessing"]))
        names.append(name)

    # The runs share their validation split (same data options); the last one opened serves for all.
    shown = range(min(args.images, len(val_set)))
    images = [val_set[index][0] for index in shown]
    truths = [val_set[index][1] for index in shown]
    predictions = [[predict_labels(model, image, pre, "cpu") for image in images] for model, pre in models]
    save_label_grid(images, [truths] + predictions, ["image", "ground truth"] + names, val_set.class_names,
                    val_set.class_colors, args.out)
    print(f"\nsaved {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
