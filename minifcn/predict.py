"""python -m minifcn.predict: segment images with a checkpoint.

For every image it writes ``<name>_labels.png``, the label map as a palette PNG (pixel values are the
class indices, shown in the classes' colours), and ``<name>_overlay.png``, the prediction blended over
the image with a legend of the classes present. Any size works, and greyscale, RGBA, palette and
EXIF-rotated images are read as a viewer would show them.
"""

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .cli import DefaultsHelpFormatter, UsageError, resolve_device, run
from .data import read_image
from .inference import load_trained_model, predict_labels
from .viz import overlay_with_legend, palette_image

PROG = "python -m minifcn.predict"


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to segment")
    parser.add_argument("--weights", required=True, metavar="CHECKPOINT", help="a minifcn FCN checkpoint (.npz)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs (created if needed)")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the overlay's colours")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def output_paths(image_path, out_dir):
    stem = Path(image_path).stem
    return out_dir / f"{stem}_labels.png", out_dir / f"{stem}_overlay.png"


def main(argv=None):
    args = build_parser().parse_args(argv)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder")
    missing = [path for path in args.images if not Path(path).is_file()]
    if missing:
        raise UsageError(f"no such image file: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    stems = [Path(path).stem for path in args.images]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise UsageError(f"several images are named {duplicates[0]}: their outputs would overwrite each other")
    if not args.overwrite:
        existing = [str(p) for path in args.images for p in output_paths(path, out_dir) if p.exists()]
        if existing:
            raise UsageError(f"{existing[0]} exists; use --overwrite or another --out")
    device = resolve_device(args.device)
    model, metadata = load_trained_model(args.weights, device)
    class_names = metadata.get("class_names") or [f"class {k}" for k in range(model.num_classes)]
    colors = metadata.get("class_colors")
    if colors is None:
        from .data import voc_colormap

        colors = voc_colormap(model.num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(args.images, desc="predict", unit="image", disable=args.no_progress):
        image = read_image(path)
        labels = predict_labels(model, image, metadata["preprocessing"], device)
        labels_path, overlay_path = output_paths(path, out_dir)
        palette_image(labels, colors).save(labels_path)
        overlay_with_legend(image, labels, class_names, colors, overlay_path, alpha=args.alpha)
    print(f"wrote {2 * len(args.images)} files to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, None, PROG))
