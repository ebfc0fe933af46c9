"""python -m minifcn.evaluate: the four FCN scores and per-class IoU of a checkpoint on a dataset split.

Images are evaluated at their original resolution, one at a time (or in batches when they all have
one size, as the synthetic ones); an image larger than ``--tile-size`` is scored in overlapping tiles,
so memory stays bounded whatever its size. The scores are printed and written as JSON (strict JSON:
a score that does not exist, such as the IoU of a class absent from the images, is null).
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

from .cli import DefaultsHelpFormatter, UsageError, resolve_device, run
from .data import BatchLoader, open_dataset
from .data_parallel import DataParallel
from .inference import MIN_TILE_SIZE, TILE_SIZE, evaluate_model, load_trained_model
from .training.datasets import Subset

PROG = "python -m minifcn.evaluate"


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--weights", required=True, metavar="CHECKPOINT", help="a minifcn FCN checkpoint (.npz)")
    parser.add_argument("--data", choices=["synthetic", "camvid", "voc", "folder"], default="synthetic")
    parser.add_argument("--data-root", help="dataset folder (camvid, voc, folder)")
    parser.add_argument("--split", default=None, help="split to evaluate (default: val; test for camvid)")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per batch (default: 8 for synthetic data, else 1: images are evaluated whole)")
    parser.add_argument("--threads", type=int, default=None,
                        help="on the CPU, split each batch into this many parts, one core each (default: every core this "
                             "process may use)")
    parser.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="where to write the scores (default: beside the checkpoint, never overwriting)")
    parser.add_argument("--tile-size", type=int, default=TILE_SIZE, metavar="PIXELS",
                        help="score images larger than this in overlapping tiles, so memory stays that of one "
                             "tile whatever the image's size; 0 scores every image whole")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def check_options(args):
    """UsageError for values that make no sense, before any work."""
    for name in ("threads", "batch_size", "max_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.tile_size != 0 and args.tile_size < MIN_TILE_SIZE:
        raise UsageError(f"--tile-size must be at least {MIN_TILE_SIZE} (or 0: whole images), got {args.tile_size}")


def check_writable(path):
    """UsageError unless a new file can be written at ``path``: checked before the evaluation, so that
    its work is not lost at the end."""
    if path.exists():
        raise UsageError(f"{path} exists; choose another --json path")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"--json {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--json {path}: folder {folder} is not writable")


def strict_json(value):
    """``value`` with every NaN or infinity replaced by None, so the file is JSON any parser reads."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, float) or hasattr(value, "dtype"):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def open_evaluation_set(args, metadata):
    """The dataset to evaluate on; synthetic data is regenerated with the run's own settings."""
    split = args.split or ("test" if args.data == "camvid" else "val")
    if args.data == "synthetic":
        config = (metadata.get("training") or {}).get("config") or {}
        sizes = config.get("synthetic_size") or (1000, 200)
        return open_dataset("synthetic", split=split, size=sizes[1], image_size=config.get("image_size", 96),
                            seed=config.get("seed", 0))
    if not args.data_root:
        raise UsageError(f"--data {args.data} needs --data-root")
    return open_dataset(args.data, args.data_root, split)


def format_table(scores, class_names):
    """The four scores and a per-class IoU table, as text."""
    lines = [f"pixel accuracy          {scores['pixel_accuracy'] * 100:6.2f}",
             f"mean accuracy           {scores['mean_accuracy'] * 100:6.2f}",
             f"mean IoU                {scores['mean_iou'] * 100:6.2f}",
             f"frequency-weighted IoU  {scores['frequency_weighted_iou'] * 100:6.2f}",
             "", f"{'class':<20} {'IoU':>7}"]
    for name, iou in zip(class_names, scores["per_class_iou"]):
        lines.append(f"{name:<20} {'   n/a' if iou != iou else f'{iou * 100:7.2f}'}")
    return "\n".join(lines)


def unused_path(path):
    """``path``, or ``path`` with -1, -2, ... before the suffix if it exists (never overwrite)."""
    path = Path(path)
    candidate, counter = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
        counter += 1
    return candidate


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_options(args)
    if args.json:
        check_writable(Path(args.json))
    device = resolve_device(args.device)
    model, metadata = load_trained_model(args.weights, device)
    dataset = open_evaluation_set(args, metadata)
    if dataset.num_classes != model.num_classes:
        raise UsageError(f"{args.weights} predicts {model.num_classes} classes but {args.data} has "
                         f"{dataset.num_classes}")
    if args.max_images:
        dataset = Subset(dataset, args.max_images)
    batch_size = args.batch_size or (8 if args.data == "synthetic" else 1)
    loader = BatchLoader(dataset, batch_size, metadata["preprocessing"], shuffle=False)
    runner = DataParallel(model, args.threads) if device == "cpu" else model
    scores, loss = evaluate_model(runner, loader, model.num_classes, dataset.ignore_index, device,
                                  progress=not args.no_progress, description=f"evaluate {args.data}",
                                  tile_size=args.tile_size or None)
    class_names = metadata.get("class_names") or dataset.class_names
    print(f"{args.weights} on {args.data} {args.split or ''} ({len(dataset)} images)".replace("  ", " "))
    print(format_table(scores, class_names))
    json_path = Path(args.json) if args.json else unused_path(
        Path(args.weights).with_name(f"{Path(args.weights).stem}_{args.data}_scores.json"))
    if args.json and json_path.exists():
        raise UsageError(f"{json_path} exists; choose another --json path")
    report = {"weights": str(args.weights), "data": args.data, "data_root": args.data_root, "split": args.split,
              "images": len(dataset), "loss": loss, **scores, "class_names": list(class_names)}
    json_path.write_text(json.dumps(strict_json(report), indent=2, allow_nan=False) + "\n")
    print(f"scores written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, None, PROG))
