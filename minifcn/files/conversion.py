"""Foreign weight files read as minifcn-named state: which format a file is, and how its names map.

Formats, detected from the file's content (``read_source``'s ``format`` forces one):

``torchvision-vgg16``
    torchvision's ImageNet VGG16 (``vgg16-*.pth``): ``features.N.*`` for the 13 convolutions,
    ``classifier.0/3/6.*`` for fc6, fc7 and the 1000-class fc8. fc6's 4096 x 25088 matrix becomes a
    4096 x 512 x 7 x 7 convolution (C order: 25088 = 512 channels x 7 x 7 positions, as torchvision
    flattens pool5), fc7 a 1 x 1 one; fc8 is dropped (ImageNet classes, no use to a segmenter).
    Input convention: RGB in [0, 1], ImageNet mean/std.
``fcn-pth``
    a state dict of the PyTorch port of the reference FCN (``fcn8s_from_caffe.pth`` ...), whose names
    are minifcn's own; the architecture follows from the upsampling layers' names, K (and fc6/fc7's
    width, 4096 in the reference) from score_fr.
    Input convention: Caffe's BGR, 0..255, minus the FCN mean.
``caffe-vgg16-npz``
    the conv-only VGG16 ``.npz`` with ``conv{B}_{J}_W`` / ``conv{B}_{J}_b`` (../shared/weights):
    13 convolutions, no fc6/fc7. Input convention: BGR, 0..255, minus the VGG mean.
``minifcn``
    a minifcn checkpoint, read as it is (a VGG16 trunk converted earlier can be the source of an FCN).

The expected names and shapes come from ``minifcn.models.shapes``; only the foreign names (and
torchvision's layer indices) are written here. ``.pth`` files are read by ``files.pth``, which never
imports torch nor runs the file's pickle.
"""

import os
import zipfile
from collections import OrderedDict

import numpy as np

from ..models.shapes import fcn_shapes, vgg16_shapes
from ..models.vgg import conv_names
from .checkpoint import (
    PREPROCESSING_CAFFE_FCN,
    PREPROCESSING_CAFFE_VGG16,
    PREPROCESSING_TORCHVISION,
    CheckpointError,
    describe_mismatch,
    first_non_finite,
    load_checkpoint,
    read_npy_headers,
    summarize_mismatch,
)
from .pth import load_pth
from .zip_archive import is_zip_archive

FORMATS = ("torchvision-vgg16", "fcn-pth", "caffe-vgg16-npz", "minifcn")

# Index of each convolution in torchvision's ``features`` Sequential (ReLUs and pools sit in between).
TORCHVISION_FEATURE_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class ConvertError(ValueError):
    """The source cannot be converted as asked: bad input, not a bug. One line, for the user."""


def check_shapes(expected, state, what):
    """Raise a ConvertError naming the first differences between ``expected`` (name -> shape) and ``state``."""
    problems = describe_mismatch(expected, state)
    if problems:
        raise ConvertError(f"{what}: {summarize_mismatch(problems)}")


def _float32(state):
    """Every array as float32 (a half-precision export loads too), C-contiguous."""
    return OrderedDict((name, np.ascontiguousarray(array, dtype=np.float32)) for name, array in state.items())


# --------------------------------------------------------------------------------------- mappings


def torchvision_vgg16_to_minifcn(state, what="source"):
    """torchvision VGG16 names -> minifcn names; fc6/fc7 reshaped to convolutions, fc8 dropped.

    ``state``: name -> array as torchvision saves it (classifier optional); returns minifcn's
    conv1_1.weight ... conv5_3.bias, then fc6/fc7 when the source has a classifier, all float32.
    """
    shapes = vgg16_shapes()
    convs = list(zip(conv_names(), TORCHVISION_FEATURE_INDEX))
    expected = OrderedDict()
    for name, index in convs:
        expected[f"features.{index}.weight"] = shapes[f"{name}.weight"]
        expected[f"features.{index}.bias"] = shapes[f"{name}.bias"]
    has_classifier = any(key.startswith("classifier.") for key in state)
    if has_classifier:
        # torchvision's Linear layers hold fc6 and fc7 as matrices: (out, in * kh * kw).
        for linear, conv in (("classifier.0", "fc6"), ("classifier.3", "fc7")):
            out_channels, *fan_in = shapes[f"{conv}.weight"]
            expected[f"{linear}.weight"] = (out_channels, int(np.prod(fan_in)))
            expected[f"{linear}.bias"] = shapes[f"{conv}.bias"]
        # fc8's class count is whatever the model was trained for (1000 for ImageNet); it is dropped.
        for key in ("classifier.6.weight", "classifier.6.bias"):
            if key in state:
                expected[key] = tuple(np.shape(state[key]))
    check_shapes(expected, state, f"{what} is not a torchvision VGG16 state dict")
    out = OrderedDict()
    for name, index in convs:
        out[f"{name}.weight"] = state[f"features.{index}.weight"]
        out[f"{name}.bias"] = state[f"features.{index}.bias"]
    if has_classifier:
        # torchvision flattens pool5 (N, 512, 7, 7) in C order before classifier.0, so row r of its
        # weight reshaped in C order is exactly fc6's 512 x 7 x 7 kernel for output r.
        out["fc6.weight"] = state["classifier.0.weight"].reshape(shapes["fc6.weight"])
        out["fc6.bias"] = state["classifier.0.bias"]
        out["fc7.weight"] = state["classifier.3.weight"].reshape(shapes["fc7.weight"])
        out["fc7.bias"] = state["classifier.3.bias"]
    return _float32(out)


def fcn_arch_from_names(names):
    """fcn8s / fcn16s / fcn32s from which upsampling layers a reference-named state dict has, else None."""
    if "upscore8.weight" in names:
        return "fcn8s"
    if "upscore16.weight" in names:
        return "fcn16s"
    if "upscore.weight" in names:
        return "fcn32s"
    return None


def fcn_pth_to_minifcn(state, what="source"):
    """A reference-named FCN state dict, checked: returns (arch, num_classes, state in model order)."""
    arch = fcn_arch_from_names(state)
    if arch is None:
        raise ConvertError(f"{what}: an FCN state dict needs upscore8.weight (FCN-8s), upscore16.weight "
                           f"(FCN-16s) or upscore.weight (FCN-32s); found none")
    if "score_fr.weight" not in state or np.ndim(state["score_fr.weight"]) != 4:
        raise ConvertError(f"{what}: has no 4-d score_fr.weight to read the number of classes from")
    # K from score_fr's outputs, fc6/fc7's width from its inputs (4096 in the reference; a port trained
    # with narrower fc layers converts just as well).
    num_classes, fc_channels = (int(n) for n in np.shape(state["score_fr.weight"])[:2])
    expected = fcn_shapes(arch, num_classes, fc_channels=fc_channels)
    check_shapes(expected, state, f"{what} does not match the reference {arch}")
    return arch, num_classes, _float32(OrderedDict((name, state[name]) for name in expected))


def caffe_vgg16_npz_to_minifcn(arrays, what="source"):
    """``conv{B}_{J}_W`` / ``conv{B}_{J}_b`` -> ``conv{B}_{J}.weight`` / ``.bias`` (already OIHW)."""
    shapes = vgg16_shapes(fc_channels=None)
    expected = OrderedDict()
    for name in conv_names():
        expected[f"{name}_W"] = shapes[f"{name}.weight"]
        expected[f"{name}_b"] = shapes[f"{name}.bias"]
    check_shapes(expected, arrays, f"{what} is not the conv-only Caffe VGG16 .npz")
    out = OrderedDict()
    for name in conv_names():
        out[f"{name}.weight"] = arrays[f"{name}_W"]
        out[f"{name}.bias"] = arrays[f"{name}_b"]
    return _float32(out)


# --------------------------------------------------------------------------------------- reading


class Source:
    """What was read from a weights file: ``format``, ``state`` (minifcn name -> float32 array), ``arch``
    ("vgg16" or an FCN), ``preprocessing`` (the input convention the weights were trained with),
    ``num_classes`` (None for a VGG16 trunk), ``options`` (what ``build_model`` needs to rebuild it)
    and ``upstream`` (a minifcn checkpoint's own ``source`` metadata, else None)."""

    def __init__(self, path, format, state, arch, preprocessing, num_classes=None, options=None, upstream=None):
        self.path, self.format, self.state, self.arch = path, format, state, arch
        self.preprocessing, self.num_classes = preprocessing, num_classes
        self.options = options or {}
        self.upstream = upstream


def detect_container(path):
    """"pth" (a torch zip, or anything not a zip: files.pth says what it is) or "npz", from content."""
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ConvertError(f"{path}: is a directory, not a weights file")
    if not is_zip_archive(path):
        return "pth"  # files.pth explains what it is (legacy torch file, bare pickle, not a checkpoint)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ConvertError(f"{path}: corrupt zip archive ({error})") from None
    if any(name.endswith("/data.pkl") for name in names):
        return "pth"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    raise ConvertError(f"{path}: unknown format: a zip archive that is neither a torch .pth nor an .npz")


def _load_npz(path):
    # Each member's declared size is checked before it is read: none may exceed VGG16's largest layer.
    largest = max(int(np.prod(shape)) for shape in vgg16_shapes().values())
    try:
        headers = read_npy_headers(path)
    except CheckpointError as error:
        raise ConvertError(str(error)) from None
    for name, (shape, _) in headers.items():
        if int(np.prod(shape, dtype=np.int64)) > largest:
            raise ConvertError(f"{path}: {name} declares shape {tuple(shape)}, larger than any VGG16 layer")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return OrderedDict((name, npz[name]) for name in npz.files)
    except Exception as error:  # zip/CRC/format errors, or a pickled (object) array
        raise ConvertError(f"{path}: unreadable .npz ({type(error).__name__}: {error})") from None


def _detect_format(path, container, state):
    """The format of a file whose container is known (``state``: the .pth's, already read)."""
    if container == "pth":
        if "features.0.weight" in state:
            return "torchvision-vgg16"
        if "score_fr.weight" in state or fcn_arch_from_names(state):
            return "fcn-pth"
        shown = ", ".join(list(state)[:4]) or "nothing"
        raise ConvertError(f"{path}: unknown format: a torch state dict with neither torchvision VGG16 "
                           f"names (features.0.weight) nor FCN names (score_fr.weight); it has {shown}")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    if "__metadata__.npy" in names:
        return "minifcn"
    if "conv1_1_W.npy" in names:
        return "caffe-vgg16-npz"
    shown = ", ".join(sorted(n[:-4] for n in names)[:4])
    raise ConvertError(f"{path}: unknown format: an .npz without minifcn metadata or conv1_1_W; it has {shown}")


def read_source(path, format=None):
    """Read ``path`` in ``format`` (one of FORMATS; None or "auto": detect) mapped to minifcn names; a ``Source``."""
    path = os.fspath(path)
    container = detect_container(path)
    if format in (None, "auto"):
        state = load_pth(path) if container == "pth" else None  # a .pth is read once; an .npz by its mapping
        format = _detect_format(path, container, state)
    else:
        if format not in FORMATS:
            raise ConvertError(f"unknown --format {format!r}: expected one of {', '.join(FORMATS)}")
        expected = "pth" if format in ("torchvision-vgg16", "fcn-pth") else "npz"
        if container != expected:
            raise ConvertError(f"{path}: --format {format} expects a {'torch .pth' if expected == 'pth' else '.npz'} "
                               f"file, but this is {'a torch .pth' if container == 'pth' else 'an .npz'}")
        state = load_pth(path) if container == "pth" else None

    source = _read_mapped(path, format, state)
    bad = first_non_finite(source.state)
    if bad is not None:
        raise ConvertError(f"{path}: {bad} holds NaN or infinite values: these weights are unusable")
    return source


def _read_mapped(path, format, state):
    """The ``Source`` of ``path`` in ``format`` (``state``: a .pth's state dict, already read)."""
    from ..inference import expected_shapes

    what = os.path.basename(path)
    if format == "torchvision-vgg16":
        mapped = torchvision_vgg16_to_minifcn(state, what)
        return Source(path, format, mapped, "vgg16", PREPROCESSING_TORCHVISION,
                      options={"width": 1.0, "fc_channels": 4096 if "fc6.weight" in mapped else None})
    if format == "fcn-pth":
        arch, k, mapped = fcn_pth_to_minifcn(state, what)
        # What build_model needs to rebuild it; the reference's "at once" variant has the same
        # parameters and cannot be told apart from its weights, so the staged one is assumed.
        options = {"num_classes": k, "width": 1.0, "fc_channels": int(mapped["fc6.weight"].shape[0]),
                   "geometry": "reference", "at_once": False, "learn_upsampling": False}
        return Source(path, format, mapped, arch, PREPROCESSING_CAFFE_FCN, k, options)
    if format == "caffe-vgg16-npz":
        mapped = caffe_vgg16_npz_to_minifcn(_load_npz(path), what)
        return Source(path, format, mapped, "vgg16", PREPROCESSING_CAFFE_VGG16,
                      options={"width": 1.0, "fc_channels": None})
    checkpoint = load_checkpoint(path, shapes=expected_shapes)
    md = checkpoint.metadata
    # ``upstream``: where that checkpoint came from, for the provenance of what is built from it.
    return Source(path, format, OrderedDict(checkpoint.state), md["arch"], md["preprocessing"],
                  md.get("num_classes"), md.get("options"), upstream=md.get("source"))
