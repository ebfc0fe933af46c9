"""``python -m minifcn.convert SRC DST.npz``: bring foreign weights in as a minifcn checkpoint.

SRC is torchvision's ImageNet VGG16 (``vgg16-*.pth``), a state dict of the PyTorch port of the
reference FCN (``fcn8s_from_caffe.pth`` ...), the conv-only Caffe-style VGG16 ``.npz``, or (as the VGG16
source of ``--arch``) a minifcn checkpoint. The format is detected from the file's content
(``--format`` forces one); ``minifcn.files.conversion`` maps each onto minifcn's names and says which
input convention it brings. .pth files are read without torch and without running their pickle.

With ``--arch fcn8s|fcn16s|fcn32s --num-classes K`` the VGG16 weights become a ready-to-train FCN:
convolutions copied, fc6/fc7 copied from the classifier when the source has one (else He-normal from
the model's seeded generator, said in the output and the metadata), score layers zero, upsampling
bilinear. The checkpoint keeps the source's input convention: weights trained on RGB [0, 1] inputs
stay that way, and train/predict read it from the metadata.
"""

import argparse
import os
import sys

import numpy as np

from minifcn import __version__
from minifcn.cli import run
from minifcn.files.checkpoint import make_metadata, save_checkpoint
from minifcn.files.conversion import FORMATS, ConvertError, check_shapes, read_source
from minifcn.inference import expected_shapes
from minifcn.models import ARCHITECTURES, build_model
from minifcn.models.shapes import vgg16_shapes

PROG = "minifcn.convert"
FCN_ARCHES = tuple(ARCHITECTURES)


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
    names = colors = None
    if source.num_classes is not None:
        names, colors = _default_classes(source.num_classes, reference=source.format == "fcn-pth", names=class_names)
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
    try:  # an enormous model is refused before anything is read or built
        expected_shapes({"arch": arch, "num_classes": num_classes,
                         "options": {"width": width, "fc_channels": fc_channels}})
    except ValueError as error:
        raise ConvertError(f"--arch {arch}: {error}") from None
    source = read_source(src, format)
    if source.arch != "vgg16":
        raise ConvertError(f"{src}: --arch builds an FCN from VGG16 weights, but this is already an "
                           f"{source.arch} (convert it without --arch)")
    has_fc = "fc6.weight" in source.state and not random_fc
    source_fc = int(source.state["fc6.weight"].shape[0]) if has_fc else None
    if has_fc and fc_channels != source_fc:
        raise ConvertError(f"{src}: has {source_fc}-channel fc6/fc7 but --fc-channels is {fc_channels}; "
                           f"use --fc-channels {source_fc}, or --random-fc to initialise fc6/fc7 at random")
    # Every trunk parameter must come from the source (checked before the model takes memory); the
    # source's other entries (fc6/fc7 under --random-fc) are left out.
    copied = vgg16_shapes(width, fc_channels if has_fc else None)
    check_shapes(copied, {name: source.state[name] for name in copied if name in source.state},
                 f"{src} does not fit {arch}")
    model = build_model(arch, num_classes=num_classes, width=width, fc_channels=fc_channels,
                        geometry=geometry, seed=seed)
    state = model.state_dict()
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


def convert_command(argv=None):
    """Do what the command line ``argv`` asks; raise ConvertError (and friends) for bad input."""
    args = _parser().parse_args(argv)  # exits 2 with usage on bad options, 0 for --help
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
    except OSError as error:  # cannot write DST (full disk, read-only file system): the user's environment
        raise ConvertError(f"{error.filename or args.dst}: {error.strerror or error}") from None
    print(_summary(args.src, args.dst, state, metadata))
    for note in notes:
        print(note)


def main(argv=None):
    """Command-line entry point; returns the exit code (0 ok, 2 bad input, 1 unexpected failure)."""
    return run(convert_command, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
