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

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minifcn.data import BatchLoader
from minifcn.inference import evaluate_model, load_trained_model, predict_labels
from minifcn.trainer import TrainingConfig, open_splits
from minifcn.viz import colorize, legend_handles


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

    _, val_set = open_splits(config)
    columns = 2 + len(models)
    figure = Figure(figsize=(2.2 * columns, 2.2 * args.images + 0.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = np.asarray(figure.subplots(args.images, columns, squeeze=False))
    for row in range(args.images):
        image, truth = val_set[row]
        panels = [image, colorize(truth, val_set.class_colors)]
        panels += [colorize(predict_labels(model, image, pre, "cpu"), val_set.class_colors) for model, pre in models]
        for column, (axis, panel) in enumerate(zip(axes[row], panels)):
            axis.imshow(panel, interpolation="nearest")
            axis.set_axis_off()
            if row == 0:
                axis.set_title((["image", "ground truth"] + names)[column], fontsize=10)
    figure.legend(handles=legend_handles(val_set.class_names, val_set.class_colors), loc="lower center",
                  ncol=len(val_set.class_names), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.5 / (2.2 * args.images + 0.6), 1, 1))
    figure.savefig(args.out)
    print(f"\nsaved {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
