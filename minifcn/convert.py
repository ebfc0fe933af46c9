"""``python -m minifcn.convert SRC DST.npz``: bring foreign weights in as a minifcn checkpoint.

Formats, detected from the file's content (``--format`` forces one):

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
    a minifcn checkpoint; only useful as the VGG16 source of ``--arch``.

With ``--arch fcn8s|fcn16s|fcn32s --num-classes K`` the VGG16 weights become a ready-to-train FCN:
convolutions copied, fc6/fc7 copied from the classifier when the source has one (else He-normal from
the model's seeded generator, said in the output and the metadata), score layers zero, upsampling
bilinear. The checkpoint keeps the source's input convention: weights trained on RGB [0, 1] inputs
stay that way, and train/predict read it from the metadata.

.pth files are read by ``minifcn.files.pth``, which never imports torch nor runs the file's pickle.
"""

import argparse
import os
import sys
import traceback
import zipfile
from collections import OrderedDict

import numpy as np

from minifcn import __version__
from minifcn.files.checkpoint import (
    PREPROCESSING_CAFFE_FCN,
    PREPROCESSING_CAFFE_VGG16,
    PREPROCESSING_TORCHVISION,
    CheckpointError,
    describe_mismatch,
    load_checkpoint,
    make_metadata,
    save_checkpoint,
    summarize_mismatch,
)
from minifcn.files.pth import UnsafeOrCorruptPthError, load_pth
from minifcn.files.zip_archive import is_zip_archive

FORMATS = ("torchvision-vgg16", "fcn-pth", "caffe-vgg16-npz", "minifcn")
FCN_ARCHES = ("fcn8s", "fcn16s", "fcn32s")


class ConvertError(ValueError):
    """The source cannot be converted as asked: bad input, not a bug. One line, for the user."""


# --------------------------------------------------------------------------------------- layouts

# VGG16's thirteen 3x3 convolutions: (name, in channels, out channels).
VGG16_CONVS = []
for _block, (_channels, _count) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
    for _index in range(1, _count + 1):
        _in = VGG16_CONVS[-1][2] if VGG16_CONVS else 3
        VGG16_CONVS.append((f"conv{_block}_{_index}", _in, _channels))

# Index of each convolution in torchvision's ``features`` Sequential (ReLUs and pools sit in between).
TORCHVISION_FEATURE_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def vgg16_shapes(fc_channels=4096):
    """name -> shape of minifcn's VGG16 parameters; fc6/fc7 included unless ``fc_channels`` is None."""
    shapes = OrderedDict()
    for name, cin, cout in VGG16_CONVS:
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.bias"] = (cout,)
    if fc_channels is not None:
        shapes["fc6.weight"] = (fc_channels, 512, 7, 7)
        shapes["fc6.bias"] = (fc_channels,)
        shapes["fc7.weight"] = (fc_channels, fc_channels, 1, 1)
        shapes["fc7.bias"] = (fc_channels,)
    return shapes


def reference_fcn_shapes(arch, num_classes, fc_channels=4096):
    """name -> shape of the reference FCN on VGG16 with K = ``num_classes`` (fc6/fc7: 4096 channels)."""
    k = num_classes
    shapes = vgg16_shapes(fc_channels)
    shapes["score_fr.weight"] = (k, fc_channels, 1, 1)
    shapes["score_fr.bias"] = (k,)
    if arch in ("fcn16s", "fcn8s"):
        shapes["score_pool4.weight"] = (k, 512, 1, 1)
        shapes["score_pool4.bias"] = (k,)
    if arch == "fcn8s":
        shapes["score_pool3.weight"] = (k, 256, 1, 1)
        shapes["score_pool3.bias"] = (k,)
        shapes["upscore2.weight"] = (k, k, 4, 4)
        shapes["upscore_pool4.weight"] = (k, k, 4, 4)
        shapes["upscore8.weight"] = (k, k, 16, 16)
    elif arch == "fcn16s":
        shapes["upscore2.weight"] = (k, k, 4, 4)
        shapes["upscore16.weight"] = (k, k, 32, 32)
    else:
        shapes["upscore.weight"] = (k, k, 64, 64)
    return shapes


def _check_shapes(expected, state, what):
    problems = describe_mismatch(expected, state)
    if problems:
        raise ConvertError(f"{what}: {summarize_mismatch(problems)}")


def _float32(state):
    """Every array as float32 (a half-precision export loads too), C-contiguous."""
    return OrderedDict((name, np.ascontiguousarray(array, dtype=np.float32)) for name, array in state.items())


# --------------------------------------------------------------------------------------- mappings


def torchvision_vgg16_to_minifcn(state, what="source"):
    """torchvision VGG16 names -> minifcn names; fc6/fc7 reshaped to convolutions, fc8 dropped."""
    expected = OrderedDict()
    for (name, cin, cout), index in zip(VGG16_CONVS, TORCHVISION_FEATURE_INDEX):
        expected[f"features.{index}.weight"] = (cout, cin, 3, 3)
        expected[f"features.{index}.bias"] = (cout,)
    has_classifier = any(key.startswith("classifier.") for key in state)
    if has_classifier:
        expected.update({
            "classifier.0.weight": (4096, 512 * 7 * 7), "classifier.0.bias": (4096,),
            "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
        })
        # fc8's class count is whatever the model was trained for (1000 for ImageNet); it is dropped.
        for key in ("classifier.6.weight", "classifier.6.bias"):
            if key in state:
                expected[key] = tuple(np.shape(state[key]))
    _check_shapes(expected, state, f"{what} is not a torchvision VGG16 state dict")
    out = OrderedDict()
    for (name, _, _), index in zip(VGG16_CONVS, TORCHVISION_FEATURE_INDEX):
        out[f"{name}.weight"] = state[f"features.{index}.weight"]
        out[f"{name}.bias"] = state[f"features.{index}.bias"]
    if has_classifier:
        # torchvision flattens pool5 (N, 512, 7, 7) in C order before classifier.0, so row r of its
        # weight reshaped in C order is exactly fc6's 512 x 7 x 7 kernel for output r.
        out["fc6.weight"] = state["classifier.0.weight"].reshape(4096, 512, 7, 7)
        out["fc6.bias"] = state["classifier.0.bias"]
        out["fc7.weight"] = state["classifier.3.weight"].reshape(4096, 4096, 1, 1)
        out["fc7.bias"] = state["classifier.3.bias"]
    return _float32(out)


def fcn_arch_from_names(names):
    """fcn8s / fcn16s / fcn32s from which upsampling layers a reference-named state dict has."""
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
    expected = reference_fcn_shapes(arch, num_classes, fc_channels)
    _check_shapes(expected, state, f"{what} does not match the reference {arch}")
    return arch, num_classes, _float32(OrderedDict((name, state[name]) for name in expected))


def caffe_vgg16_npz_to_minifcn(arrays, what="source"):
    """``conv{B}_{J}_W`` / ``conv{B}_{J}_b`` -> ``conv{B}_{J}.weight`` / ``.bias`` (already OIHW)."""
    expected = OrderedDict()
    for name, cin, cout in VGG16_CONVS:
        expected[f"{name}_W"] = (cout, cin, 3, 3)
        expected[f"{name}_b"] = (cout,)
    _check_shapes(expected, arrays, f"{what} is not the conv-only Caffe VGG16 .npz")
    out = OrderedDict()
    for name, _, _ in VGG16_CONVS:
        out[f"{name}.weight"] = arrays[f"{name}_W"]
        out[f"{name}.bias"] = arrays[f"{name}_b"]
    return _float32(out)


# --------------------------------------------------------------------------------------- reading


class Source:
    """What was read from SRC: its format, minifcn-named state, arch, K, input convention."""

    def __init__(self, path, format, state, arch, preprocessing, num_classes=None, class_names=None,
                 class_colors=None, options=None):
        self.path, self.format, self.state, self.arch = path, format, state, arch
        self.preprocessing = preprocessing
        self.num_classes, self.class_names, self.class_colors = num_classes, class_names, class_colors
        self.options = options or {}
        self.upstream = None


def detect_container(path):
    """"pth" (a torch zip, or anything not a zip: minifcn.files.pth says what it is) or "npz", from content."""
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ConvertError(f"{path}: is a directory, not a weights file")
    if not is_zip_archive(path):
        return "pth"  # minifcn.files.pth explains what it is (legacy torch file, bare pickle, not a checkpoint)
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
    try:
        with np.load(path, allow_pickle=False) as npz:
            return OrderedDict((name, npz[name]) for name in npz.files)
    except Exception as error:  # zip/CRC/format errors, or a pickled (object) array
        raise ConvertError(f"{path}: unreadable .npz ({type(error).__name__}: {error})") from None


def read_source(path, format=None):
    """Read SRC in ``format`` (None: detect) and map it to minifcn names; a ``Source``."""
    path = os.fspath(path)
    container = detect_container(path)
    state = None  # a .pth is read once, here; an .npz below, by its mapping
    if format in (None, "auto"):
        if container == "pth":
            state = load_pth(path)
            if "features.0.weight" in state:
                format = "torchvision-vgg16"
            elif "score_fr.weight" in state or fcn_arch_from_names(state):
                format = "fcn-pth"
            else:
                shown = ", ".join(list(state)[:4]) or "nothing"
                raise ConvertError(f"{path}: unknown format: a torch state dict with neither torchvision VGG16 "
                                   f"names (features.0.weight) nor FCN names (score_fr.weight); it has {shown}")
        else:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
            if "__metadata__.npy" in names:
                format = "minifcn"
            elif "conv1_1_W.npy" in names:
                format = "caffe-vgg16-npz"
            else:
                shown = ", ".join(sorted(n[:-4] for n in names)[:4])
                raise ConvertError(f"{path}: unknown format: an .npz without minifcn metadata or "
                                   f"conv1_1_W; it has {shown}")
    else:
        if format not in FORMATS:
            raise ConvertError(f"unknown --format {format!r}: expected one of {', '.join(FORMATS)}")
        expected = "pth" if format in ("torchvision-vgg16", "fcn-pth") else "npz"
        if container != expected:
            raise ConvertError(f"{path}: --format {format} expects a {'torch .pth' if expected == 'pth' else '.npz'} "
                               f"file, but this is {'a torch .pth' if container == 'pth' else 'an .npz'}")
        state = load_pth(path) if container == "pth" else None

    what = os.path.basename(path)
    if format == "torchvision-vgg16":
        mapped = torchvision_vgg16_to_minifcn(state, what)
        return Source(path, format, mapped, "vgg16", PREPROCESSING_TORCHVISION,
                      options={"width": 1.0, "fc_channels": 4096 if "fc6.weight" in mapped else None})
    if format == "fcn-pth":
        arch, k, mapped = fcn_pth_to_minifcn(state, what)
        names, colors = _default_classes(k, reference=True)
        # What build_model needs to rebuild it; the reference's "at once" variant has the same
        # parameters and cannot be told apart from its weights, so the staged one is assumed.
        options = {"num_classes": k, "width": 1.0, "fc_channels": int(mapped["fc6.weight"].shape[0]),
                   "geometry": "reference", "at_once": False, "learn_upsampling": False}
        return Source(path, format, mapped, arch, PREPROCESSING_CAFFE_FCN, k, names, colors, options)
    if format == "caffe-vgg16-npz":
        mapped = caffe_vgg16_npz_to_minifcn(_load_npz(path), what)
        return Source(path, format, mapped, "vgg16", PREPROCESSING_CAFFE_VGG16,
                      options={"width": 1.0, "fc_channels": None})
    checkpoint = load_checkpoint(path)
    md = checkpoint.metadata
    source = Source(path, format, OrderedDict(checkpoint.state), md["arch"], md["preprocessing"],
                    md.get("num_classes"), md.get("class_names"), md.get("class_colors"), md.get("options"))
    source.upstream = md.get("source")  # where that checkpoint came from, kept in the new one's metadata
    return source


def _default_classes(num_classes, reference=False, names=None):
    """Class names and colours: given names, VOC's for a 21-class reference model, else class_0...

    The reference FCN models with 21 outputs are the PASCAL VOC ones; colours follow VOC's palette.
    """
    from minifcn.data.palette import voc_colormap  # only here: convert needs it for K-class outputs

    colors = voc_colormap(max(num_classes, 1))[:num_classes].tolist()
    if names is not None:
        if len(names) != num_classes:
            raise ConvertError(f"--class-names lists {len(names)} names for {num_classes} classes")
        return list(names), colors
    if reference and num_classes == 21:
        from minifcn.data.voc import CLASS_NAMES

        return list(CLASS_NAMES), colors
    return [f"class_{i}" for i in range(num_classes)], colors


def _source_info(source, **more):
    info = {"format": source.format, "file": os.path.basename(source.path),
            "bytes": os.path.getsize(source.path), "converted_by": f"minifcn.convert {__version__}"}
    if source.upstream is not None:
        info["upstream"] = source.upstream
    info.update(more)
    return info


# --------------------------------------------------------------------------------------- converting


def convert(src, format=None, class_names=None):
    """SRC (formats torchvision-vgg16, fcn-pth, caffe-vgg16-npz) -> (state, metadata, notes) to store."""
    source = read_source(src, format)
    if source.format == "minifcn":
        raise ConvertError(f"{src}: already a minifcn checkpoint (use --arch to build an FCN from a vgg16 one)")
    if class_names is not None and source.num_classes is None:
        raise ConvertError(f"{src}: --class-names needs an FCN; {source.arch} weights have no classes")
    names, colors = source.class_names, source.class_colors
    if class_names is not None:
        names, colors = _default_classes(source.num_classes, names=class_names)
    metadata = make_metadata(source.arch, source.preprocessing, options=source.options,
                             num_classes=source.num_classes, class_names=names, class_colors=colors,
                             source=_source_info(source))
    return source.state, metadata, []


def build_fcn(src, arch, num_classes, width=1.0, fc_channels=4096, geometry="reference", seed=0, format=None,
              random_fc=False, class_names=None):
    """A ready-to-train FCN from VGG16 weights: returns (state, metadata, notes).

    Convolutions come from SRC; fc6/fc7 from its classifier when it has one (and not ``random_fc``),
    else they keep the model's He-normal initialisation from ``seed``; score layers zero; upsampling
    bilinear. ``notes`` are lines for the user about what was not copied.
    """
    if arch not in FCN_ARCHES:
        raise ConvertError(f"--arch must be one of {', '.join(FCN_ARCHES)}, got {arch!r}")
    if num_classes is None or num_classes < 1:
        raise ConvertError("--arch needs --num-classes K (a positive integer)")
    if width != 1.0:
        raise ConvertError(f"--width {width}: VGG16's pretrained weights only fit width 1.0 "
                           f"(a narrower model has no pretrained weights to start from)")
    if fc_channels < 1:
        raise ConvertError(f"--fc-channels must be positive, got {fc_channels}")
    source = read_source(src, format)
    if source.arch != "vgg16":
        raise ConvertError(f"{src}: --arch builds an FCN from VGG16 weights, but this is already an "
                           f"{source.arch} (convert it without --arch)")
    has_fc = "fc6.weight" in source.state and not random_fc
    source_fc = int(source.state["fc6.weight"].shape[0]) if has_fc else None
    if has_fc and fc_channels != source_fc:
        raise ConvertError(f"{src}: has {source_fc}-channel fc6/fc7 but --fc-channels is {fc_channels}; "
                           f"use --fc-channels {source_fc}, or --random-fc to initialise fc6/fc7 at random")
    try:
        from minifcn.models import build_model
    except ImportError as error:  # the models package is part of minifcn; its absence is a broken install
        raise RuntimeError(f"minifcn.models is not importable ({error})") from error

    model = build_model(arch, num_classes=num_classes, width=width, fc_channels=fc_channels,
                        geometry=geometry, seed=seed)
    state = model.state_dict()
    copied = [name for name in vgg16_shapes(fc_channels if has_fc else None) if name in source.state]
    _check_shapes(OrderedDict((n, state[n].shape) for n in copied),
                  OrderedDict((n, source.state[n]) for n in copied), f"{src} does not fit {arch}")
    for name in copied:
        state[name] = source.state[name]
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as error:
        raise ConvertError(f"{src}: {error}") from None

    notes = []
    if has_fc:
        fc_init = "copied from the source's classifier (fc6 reshaped to 512x7x7)"
    else:
        fc_init = (f"He-normal (std sqrt(2 / fan_in)), zero bias, drawn by minifcn.models from "
                   f"numpy.random.default_rng({seed})")
        reason = "--random-fc" if random_fc else "the source has no fc6/fc7"
        notes.append(f"note: fc6/fc7 initialised at random ({reason}): {fc_init}")
    names, colors = _default_classes(num_classes, names=class_names)
    init = {"conv1_1..conv5_3": f"copied from {os.path.basename(src)}", "fc6, fc7": fc_init,
            "score layers": "zero", "upsampling": "bilinear"}
    metadata = make_metadata(arch, source.preprocessing, options=model.options(), num_classes=num_classes,
                             class_names=names, class_colors=colors, source=_source_info(source, init=init))
    return state, metadata, notes


# --------------------------------------------------------------------------------------- command line


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m minifcn.convert",
        description="Convert VGG16 or FCN weights (torchvision .pth, PyTorch FCN .pth, Caffe-style VGG16 .npz)\n"
                    "to a minifcn checkpoint (.npz with metadata). With --arch, build a ready-to-train FCN\n"
                    "from VGG16 weights. .pth files are read without torch and without running their pickle.",
        epilog="examples:\n"
               "  python -m minifcn.convert vgg16-397923af.pth vgg16.npz\n"
               "  python -m minifcn.convert vgg16_imagenet_conv_oihw_bgr.npz fcn8s-camvid-init.npz "
               "--arch fcn8s --num-classes 11\n"
               "  python -m minifcn.convert fcn8s_from_caffe.pth fcn8s-voc.npz\n"
               "exit status: 0 converted, 2 bad input (message on stderr), 1 unexpected failure",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", metavar="SRC", help="weights to convert (.pth or .npz; format detected from content)")
    parser.add_argument("dst", metavar="DST", help="minifcn checkpoint to write (.npz)")
    parser.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                        help="force the source format instead of detecting it")
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    parser.add_argument("--class-names", metavar="A,B,...", help="comma-separated class names for the metadata")
    group = parser.add_argument_group("building an FCN from VGG16 weights")
    group.add_argument("--arch", choices=FCN_ARCHES, help="build this FCN instead of a plain conversion")
    group.add_argument("--num-classes", type=int, metavar="K", help="number of classes (with --arch)")
    group.add_argument("--width", type=float, default=1.0, help="channel width multiplier (only 1.0 can load VGG16)")
    group.add_argument("--fc-channels", type=int, default=4096, metavar="F", help="fc6/fc7 channels (default 4096)")
    group.add_argument("--geometry", choices=("reference", "compact"), default="reference",
                       help="reference (pad 100, as the paper) or compact (about 2x fewer FLOPs)")
    group.add_argument("--seed", type=int, default=0, help="seed for layers initialised at random (default 0)")
    group.add_argument("--random-fc", action="store_true",
                       help="initialise fc6/fc7 at random even when the source has VGG16's classifier")
    return parser


def _summary(src, dst, state, metadata):
    pre = metadata["preprocessing"]
    count = sum(int(np.size(a)) for a in state.values())
    classes = f", {metadata['num_classes']} classes" if metadata.get("num_classes") else ""
    fmt = lambda values: "(" + ", ".join(f"{v:g}" for v in values) + ")"  # noqa: E731
    return (f"converted {metadata['source']['format']} {src} -> {dst}: arch {metadata['arch']}{classes}, "
            f"{len(state)} tensors, {count:,} parameters; input {pre['channel_order']} scale {pre['scale']:g} "
            f"mean {fmt(pre['mean'])} std {fmt(pre['std'])}")


def run(args):
    """Do what the parsed command line asks; raise ConvertError (and friends) for bad input."""
    if not args.force and os.path.lexists(args.dst):
        raise ConvertError(f"{args.dst}: already exists (use --force to overwrite)")
    if os.path.exists(args.src) and os.path.exists(args.dst) and os.path.samefile(args.src, args.dst):
        raise ConvertError(f"{args.dst}: is the source file itself; choose another destination")
    fmt = None if args.format == "auto" else args.format
    names = None if args.class_names is None else [n.strip() for n in args.class_names.split(",")]
    if args.arch is None:
        if args.num_classes is not None or args.random_fc:
            raise ConvertError("--num-classes and --random-fc only apply with --arch")
        state, metadata, notes = convert(args.src, fmt, class_names=names)
    else:
        state, metadata, notes = build_fcn(args.src, args.arch, args.num_classes, width=args.width,
                                           fc_channels=args.fc_channels, geometry=args.geometry, seed=args.seed,
                                           format=fmt, random_fc=args.random_fc, class_names=names)
    try:
        save_checkpoint(args.dst, state, metadata, overwrite=args.force)
    except FileExistsError:
        raise ConvertError(f"{args.dst}: already exists (use --force to overwrite)") from None
    print(_summary(args.src, args.dst, state, metadata))
    for note in notes:
        print(note)


def main(argv=None):
    """Command-line entry point; returns the exit code (0 ok, 2 bad input, 1 unexpected failure)."""
    args = _parser().parse_args(argv)  # exits 2 with usage on bad options, 0 for --help
    try:
        run(args)
    except (ConvertError, UnsafeOrCorruptPthError, CheckpointError) as error:
        print(f"minifcn.convert: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # cannot write DST (permissions, full disk): the user's environment, not a bug
        print(f"minifcn.convert: error: {error.filename or args.dst}: {error.strerror or error}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("minifcn.convert: unexpected failure (a bug; the traceback is above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
