"""Procedural scenes of shapes: a dataset that needs no files and trains in minutes on a CPU.

Each image shows two or three objects (discs, rectangles, triangles, rings, bars) over a textured
background. The class of a pixel is decided by the SHAPE of the object it belongs to, never by its
colour: every object and every background gets random colours, a random gradient and a faint random
stripe or checker texture, and the whole image gets noise. Objects barely overlap (each is placed so
that at most 5% of it covers the ones before), so every outline is seen nearly whole; a ring's hole
shows whatever lies behind it, and bars are 6 to 10 pixels wide (about one cell of the network's stride-8
output). A network must learn local shape (which needs receptive field) and sharp boundaries (which
the skip connections of FCN-8s give).

The scenes are meant to be learnt well in a few minutes on a CPU: every object is large enough and
different enough from the others that the errors left are at its outline. Each choice below was
measured by the default job's validation mean IoU (benchmarks/RESULTS.md): objects occluding each
other freely cost the most (a half-hidden triangle is no triangle), then thinner bars, more objects
and stronger textures.

Item i is a function of (seed, split, i) alone: any item can be generated on its own, in any order,
by any worker, and always comes out the same.
"""

import math

import numpy as np

from .errors import DataError

CLASS_NAMES = ["background", "disc", "rectangle", "triangle", "ring", "bar"]
CLASS_COLORS = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48]], dtype=np.uint8
)
# Disjoint seed streams per split: SeedSequence([seed, split_id, i]) never repeats across splits.
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZES = {"train": 1000, "val": 200, "test": 200}
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 512
# Object and background base colours closer than this (Euclidean, 0..255 RGB) are redrawn, so that
# no object is invisible; the rest of the colour choice stays random.
_MIN_CONTRAST = 70.0
# An object is redrawn (shape, size and place) while more than this share of it would cover the
# objects already drawn, at most _PLACEMENT_TRIES times; after that the last draw stays.
_MAX_OVERLAP, _PLACEMENT_TRIES = 0.05, 20


class SyntheticShapes:
    """``size`` procedural (image, label) pairs of ``image_size`` x ``image_size`` pixels.

    ``dataset[i]`` -> image (S, S, 3) uint8 RGB, label (S, S) int32 in [0, 6). Options: ``split``
    ("train", "val", "test"; each a disjoint stream), ``size`` (default 1000 for train, 200 otherwise),
    ``image_size`` (default 96; 64..128 is the intended range), ``seed``, ``max_objects`` (default 3).
    """

    ignore_index = 255

    def __init__(self, split="train", size=None, image_size=96, seed=0, max_objects=3):
        if split not in SPLIT_IDS:
            raise DataError(
                f"synthetic dataset: unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}"
            )
        size = DEFAULT_SIZES[split] if size is None else _as_int("size", size)
        image_size = _as_int("image_size", image_size)
        seed = _as_int("seed", seed)
        max_objects = _as_int("max_objects", max_objects)
        if size < 1:
            raise DataError(f"synthetic dataset: size must be at least 1, got {size}")
        if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise DataError(
                f"synthetic dataset: image_size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}, "
                f"got {image_size}"
            )
        if seed < 0:
            raise DataError(f"synthetic dataset: seed must be non-negative, got {seed}")
        if max_objects < 1:
            raise DataError(f"synthetic dataset: max_objects must be at least 1, got {max_objects}")
        self.split = split
        self.size = size
        self.image_size = image_size
        self.seed = seed
        self.max_objects = max_objects
        self.class_names = list(CLASS_NAMES)
        self.class_colors = CLASS_COLORS.copy()
        self.num_classes = len(CLASS_NAMES)
        self.names = [f"{split}_{i:05d}" for i in range(size)]
        # Pixel-centre coordinates (S, S), shared by every item.
        centres = np.arange(image_size, dtype=np.float32) + 0.5
        self._y, self._x = np.meshgrid(centres, centres, indexing="ij")
        self._weights = None

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        index = int(index)
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(f"index out of range for a dataset of {self.size} items")
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        return _scene(rng, self._y, self._x, self.max_objects, len(CLASS_NAMES))

    def class_weights(self):
        """Median-frequency weights (K,) float32, counted over the first (up to) 200 items and remembered;
        the scenes are stationary, so a sample gives the same balance as the whole split."""
        if self._weights is None:
            from .class_weights import count_label_pixels, median_frequency_weights

            labels = (self[i][1] for i in range(min(self.size, 200)))
            self._weights = median_frequency_weights(*count_label_pixels(labels, self.num_classes))
        return self._weights.copy()

    def __repr__(self):
        return (
            f"SyntheticShapes(split={self.split!r}, size={self.size}, image_size={self.image_size}, "
            f"seed={self.seed})"
        )


def _as_int(name, value):
    try:
        result = int(value)
    except (TypeError, ValueError):
        raise DataError(f"synthetic dataset: {name} must be an integer, got {value!r}") from None
    if result != value:
        raise DataError(f"synthetic dataset: {name} must be an integer, got {value!r}")
    return result


def _scene(rng, y, x, max_objects, num_classes):
    """One (image (S, S, 3) uint8, label (S, S) int32) from ``rng``; y, x are pixel centres (S, S)."""
    # Built channel-first (3, S, S): broadcasting over a last axis of length 3 runs NumPy's inner loop
    # three elements at a time, several times slower than over rows of S.
    size = y.shape[0]
    background_color = rng.uniform(0, 255, 3)
    image = _texture(rng, y, x, background_color)
    label = np.zeros((size, size), dtype=np.int32)
    for _ in range(int(rng.integers(min(2, max_objects), max_objects + 1))):
        cls = int(rng.integers(1, num_classes))
        mask = _placed(lambda: _SHAPES[cls](rng, y, x, size), label)
        color = rng.uniform(0, 255, 3)
        for _ in range(8):
            if np.linalg.norm(color - background_color) >= _MIN_CONTRAST:
                break
            color = rng.uniform(0, 255, 3)
        # Painting in order: where a little overlap is left, the later object hides the earlier one.
        image = np.where(mask, _texture(rng, y, x, color), image)
        label[mask] = cls
    sigma = _uniform(rng, 1.0, 5.0)
    image += sigma * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image.transpose(1, 2, 0)), label


def _placed(draw, label):
    """The first mask ``draw()`` gives that covers at most _MAX_OVERLAP of its pixels already labelled
    in ``label``; the last of 1 + _PLACEMENT_TRIES draws if none does."""
    mask = draw()
    for _ in range(_PLACEMENT_TRIES):
        if (label[mask] != 0).mean() <= _MAX_OVERLAP:
            break
        mask = draw()
    return mask


def _texture(rng, y, x, color):
    """(3, S, S) float32: ``color`` shaded by a linear gradient towards a random second colour, with
    stripes or a checker pattern two times in three, so no colour or texture marks a class. The pattern
    is faint (at most 8 of 255): it still puts edges inside objects and backgrounds that are no
    outlines, without drowning the outlines."""
    size = y.shape[0]
    angle = _uniform(rng, 0, 2 * math.pi)
    ramp = (math.cos(angle) * (x - size / 2) + math.sin(angle) * (y - size / 2)) / size + 0.5
    other = color + rng.normal(0, 50, 3)
    color, delta = color.astype(np.float32)[:, None, None], (other - color).astype(np.float32)[:, None, None]
    image = color + ramp * delta
    kind = int(rng.integers(3))
    if kind:
        amplitude = _uniform(rng, 0, 8)
        frequency = 2 * math.pi / _uniform(rng, 4, 16)
        phase_u, phase_v = _uniform(rng, 0, 2 * math.pi), _uniform(rng, 0, 2 * math.pi)
        stripe_angle = _uniform(rng, 0, math.pi)
        cos, sin = math.cos(stripe_angle) * frequency, math.sin(stripe_angle) * frequency
        pattern = np.sin(cos * x + sin * y + phase_u)
        if kind == 2:
            pattern = np.sign(pattern * np.sin(cos * y - sin * x + phase_v))
        image += amplitude * pattern
    return image


def _uniform(rng, low, high):
    # A Python float, not a NumPy float64 scalar, so float32 arrays it meets stay float32 (NEP 50).
    return float(rng.uniform(low, high))


def _centre(rng, size, margin=0.1):
    low, high = margin * size, (1 - margin) * size
    return _uniform(rng, low, high), _uniform(rng, low, high)


def _disc(rng, y, x, size):
    cx, cy = _centre(rng, size)
    radius = _uniform(rng, 0.08, 0.22) * size
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def _rectangle(rng, y, x, size):
    # Half-sides of at least 7% of the image (13 px sides at 96) keep rectangles apart from the bars,
    # which are longer (at least 35%) and round-ended.
    cx, cy = _centre(rng, size)
    half_width, half_height = _uniform(rng, 0.07, 0.22) * size, _uniform(rng, 0.07, 0.22) * size
    angle = _uniform(rng, 0, math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    u = cos * dx + sin * dy
    v = cos * dy - sin * dx
    return (np.abs(u) <= half_width) & (np.abs(v) <= half_height)


def _triangle(rng, y, x, size):
    # Vertices at jittered thirds of a turn: never degenerate, never a right-angled half square. At
    # least 15% of the image from centre to vertex: smaller ones have too few cells to show a corner.
    cx, cy = _centre(rng, size)
    radius = _uniform(rng, 0.15, 0.28) * size
    start = _uniform(rng, 0, 2 * math.pi)
    angles = [start + k * 2 * math.pi / 3 + _uniform(rng, -0.35, 0.35) for k in range(3)]
    vx = [cx + radius * math.cos(a) for a in angles]
    vy = [cy + radius * math.sin(a) for a in angles]
    inside = np.ones(x.shape, dtype=bool)
    for k in range(3):
        # Angles increase, so the vertices run one way round and the inside lies on one side of
        # every edge (the left in image coordinates, where y points down).
        ex, ey = vx[(k + 1) % 3] - vx[k], vy[(k + 1) % 3] - vy[k]
        inside &= ex * (y - vy[k]) - ey * (x - vx[k]) >= 0
    return inside


def _ring(rng, y, x, size):
    cx, cy = _centre(rng, size)
    # A band of 40-60% of the outer radius: a thinner one (tried first) is a curved bar at stride 8.
    outer = _uniform(rng, 0.12, 0.25) * size
    inner = outer * _uniform(rng, 0.4, 0.6)
    distance2 = (x - cx) ** 2 + (y - cy) ** 2
    return (distance2 <= outer**2) & (distance2 >= inner**2)


def _bar(rng, y, x, size):
    # A thin segment: the points within half a thickness of it.
    x0, y0 = _centre(rng, size, margin=0.05)
    angle = _uniform(rng, 0, math.pi)
    length = _uniform(rng, 0.35, 0.8) * size
    # 6 to 10 px wide, about one output cell: bars of 3 to 6 px (tried before) lie below what a
    # stride-8 output can localise, and their IoU held the mean down.
    half_thickness = _uniform(rng, 3.0, 5.0)
    dx, dy = math.cos(angle), math.sin(angle)
    along = np.clip((x - x0) * dx + (y - y0) * dy, -length / 2, length / 2)
    px, py = x0 + along * dx, y0 + along * dy
    return (x - px) ** 2 + (y - py) ** 2 <= half_thickness**2


_SHAPES = {1: _disc, 2: _rectangle, 3: _triangle, 4: _ring, 5: _bar}
