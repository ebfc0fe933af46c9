"""python -m minifcn.predict: segment images with a checkpoint.

For every image it writes ``<name>_labels.png``, the label map as a palette PNG (pixel values are the
class indices, shown in the classes' colours), and ``<name>_overlay.png``, the prediction blended over
the image with a legend of the classes present. Any size works, and greyscale, RGBA, palette and
EXIF-rotated images are read as a viewer would show them.

Memory stays bounded whatever the image's size: an image larger than ``--tile-size`` is segmented in
overlapping tiles (each keeps its centre, where the network sees context on every side), and the
overlay, a preview, is drawn at most ``--overlay-max-size`` pixels on its longer side; the label map
is always written at the image's full size.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .cli import DefaultsHelpFormatter, UsageError, resolve_device, run
from .data import read_image
from .inference import MIN_TILE_SIZE, TILE_MARGIN, TILE_SIZE, load_trained_model, predict_labels
from .viz import overlay_with_legend, palette_image

PROG = "python -m minifcn.predict"
OVERLAY_MAX_SIZE = 2048  # a preview: matplotlib draws it in RGBA at 4 bytes a pixel, plus float copies


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to segment")
    parser.add_argument("--weights", required=True, metavar="CHECKPOINT", help="a minifcn FCN checkpoint (.npz)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs (created if needed)")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the overlay's colours, 0 to 1")
    parser.add_argument("--tile-size", type=int, default=TILE_SIZE, metavar="PIXELS",
                        help=f"segment larger images in overlapping tiles of this size (each reaching "
                             f"{TILE_MARGIN} pixels past the part it keeps), so memory stays that of one tile "
                             f"whatever the image's size; 0 segments every image whole")
    parser.add_argument("--overlay-max-size", type=int, default=OVERLAY_MAX_SIZE, metavar="PIXELS",
                        help="draw the overlay (a preview) at most this many pixels on its longer side; the "
                             "label map is always full size; 0: the overlay at full size too")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def output_paths(image_path, out_dir):
    stem = Path(image_path).stem
    return out_dir / f"{stem}_labels.png", out_dir / f"{stem}_overlay.png"


def check_options(args):
    """UsageError for values that make no sense."""
    if not (math.isfinite(args.alpha) and 0 <= args.alpha <= 1):
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.tile_size != 0 and args.tile_size < MIN_TILE_SIZE:
        raise UsageError(f"--tile-size must be at least {MIN_TILE_SIZE} (or 0: whole images), got {args.tile_size}")
    if args.overlay_max_size < 0:
        raise UsageError(f"--overlay-max-size must be 0 or more, got {args.overlay_max_size}")


def preview(image, labels, max_size):
    """``(image, labels)`` shrunk (nearest neighbour for the labels) to at most ``max_size`` pixels on
    the longer side; as they are when smaller or ``max_size`` is 0."""
    height, width = labels.shape
    if max_size == 0 or max(height, width) <= max_size:
        return image, labels
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    rows = (np.arange(size[1]) * height // size[1])[:, None]
    columns = (np.arange(size[0]) * width // size[0])[None, :]
    return small_image, labels[rows, columns]


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_options(args)
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
        labels = predict_labels(model, image, metadata["preprocessing"], device, tile_size=args.tile_size or None)
        labels_path, overlay_path = output_paths(path, out_dir)
        palette_image(labels, colors).save(labels_path)
        overlay_with_legend(*preview(image, labels, args.overlay_max_size), class_names, colors, overlay_path,
                            alpha=args.alpha)
    print(f"wrote {2 * len(args.images)} files to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, None, PROG))
