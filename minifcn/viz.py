"""Pictures: label maps in colour, overlays, learning curves and image/truth/prediction grids.

Figures are drawn with matplotlib's object API on an Agg canvas (never pyplot), so saving a figure
works on a machine without a display and does not touch the user's matplotlib backend.
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .files.atomic import atomic_write

IGNORED_COLOR = (0, 0, 0)


def save_figure(figure, path):
    """Write ``figure`` as a PNG atomically: a run killed while drawing keeps the previous picture."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    with atomic_write(path) as file:
        file.write(buffer.getvalue())


def colorize(labels, colors, ignore_index=255):
    """labels (H, W) integers -> (H, W, 3) uint8 RGB using ``colors`` (K, 3); ignored pixels black."""
    colors = np.asarray(colors, dtype=np.uint8)
    labels = np.asarray(labels)
    valid = (labels >= 0) & (labels < len(colors))
    out = np.zeros(labels.shape + (3,), np.uint8)
    out[valid] = colors[labels[valid]]
    out[labels == ignore_index] = IGNORED_COLOR
    return out


def palette_image(labels, colors):
    """A mode "P" PIL image whose pixel values are the labels (H, W) and whose palette is ``colors``:
    the file keeps the class indices exactly and still looks right in any image viewer."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"labels must be in [0, 255] for a palette PNG, got [{labels.min()}, {labels.max()}]")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.asarray(colors, np.uint8)[:256]
    image.putpalette(palette.reshape(-1).tolist())
    return image


def overlay(image, labels, colors, alpha=0.5, ignore_index=255):
    """image (H, W, 3) uint8 blended with the coloured labels (H, W); ignored pixels left as they are."""
    coloured = colorize(labels, colors, ignore_index).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * coloured
    keep = np.asarray(labels) == ignore_index
    blended[keep] = image[keep]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def legend_handles(class_names, colors, present=None):
    """matplotlib patches for a legend, optionally only for the classes in ``present``."""
    colors = np.asarray(colors, np.float32) / 255
    indices = range(len(class_names)) if present is None else sorted(present)
    return [Patch(facecolor=colors[i], edgecolor="black", label=class_names[i]) for i in indices]


def overlay_with_legend(image, labels, class_names, colors, path, alpha=0.5, ignore_index=255):
    """Save the overlay of ``labels`` on ``image`` with a legend of the classes present."""
    height, width = labels.shape
    figure = Figure(figsize=(max(4.0, width / 100 + 2.2), max(3.0, height / 100 + 0.4)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes([0, 0, width / 100 / figure.get_figwidth(), 1])
    axes.imshow(overlay(image, labels, colors, alpha, ignore_index))
    axes.set_axis_off()
    present = {int(v) for v in np.unique(labels) if 0 <= v < len(class_names)}
    figure.legend(handles=legend_handles(class_names, colors, present), loc="center right", fontsize=8, frameon=False)
    save_figure(figure, path)


def save_learning_curves(rows, path, against="iteration", reference_iou=None):
    """Train and validation loss, and validation mean IoU, from log rows (dicts with iteration,
    seconds, train_loss, val_loss, mean_iou; numbers or the strings of log.csv), against iterations
    or, with ``against="minutes"``, against minutes of training. ``reference_iou`` = (value, label)
    draws a dashed line to compare the mean IoU with, e.g. a published figure."""
    if against == "minutes":
        x = [float(row["seconds"]) / 60 for row in rows]
        x_label = "minutes of training"
    else:
        x = [int(row["iteration"]) for row in rows]
        x_label = "iteration"
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, iou_axes = figure.subplots(1, 2)
    loss_axes.plot(x, [float(row["train_loss"]) for row in rows], "o-", label="train")
    loss_axes.plot(x, [float(row["val_loss"]) for row in rows], "o-", label="validation")
    loss_axes.set_ylabel("loss")
    loss_axes.legend()
    iou_axes.plot(x, [float(row["mean_iou"]) for row in rows], "o-", color="tab:green")
    if reference_iou is not None:
        value, label = reference_iou
        iou_axes.axhline(value, color="grey", linestyle="--", label=label)
        iou_axes.legend(loc="lower right")
    iou_axes.set_ylabel("validation mean IoU")
    iou_axes.set_ylim(0, 1)
    for axes in (loss_axes, iou_axes):
        axes.set_xlabel(x_label)
        axes.grid(alpha=0.3)
        if against != "minutes":
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole numbers
    figure.tight_layout()
    save_figure(figure, path)


def save_prediction_grid(images, truths, predictions, class_names, colors, path, ignore_index=255, titles=None):
    """One row per example: image, ground truth, prediction; a legend of all classes below."""
    save_label_grid(images, [truths, predictions], titles or ("image", "ground truth", "prediction"), class_names,
                    colors, path, ignore_index)


def save_label_grid(images, label_columns, titles, class_names, colors, path, ignore_index=255):
    """One row per example: the image, then one coloured label map per column of ``label_columns``
    (lists of (H, W) maps, e.g. the ground truth and several models' predictions); ``titles`` names
    every column, image included; a legend of all classes below."""
    rows, columns = len(images), 1 + len(label_columns)
    figure = Figure(figsize=(3 * columns, 3 * rows + 0.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = np.asarray(figure.subplots(rows, columns, squeeze=False))
    for row in range(rows):
        panels = [images[row]] + [colorize(labels[row], colors, ignore_index) for labels in label_columns]
        for column, panel in enumerate(panels):
            axes[row, column].imshow(panel, interpolation="nearest")
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(titles[column])
    figure.legend(handles=legend_handles(class_names, colors), loc="lower center", ncol=min(6, len(class_names)),
                  fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.6 / (3 * rows + 0.8), 1, 1))
    save_figure(figure, path)
