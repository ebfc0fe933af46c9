"""The parameter shapes of VGG16 and FCN-32s/16s/8s, computed from the block table without building a model.

A converter or a checker needs to know what a state dict should hold before it holds one: building
the reference FCN-8s just to ask would allocate 134 million parameters. The shapes follow from
``vgg.VGG16_BLOCKS`` and the options that change them (K, width, fc_channels); a geometry changes no
shape. Every dict is ordered as the model's ``state_dict()``: conv1_1 ... conv5_3, fc6, fc7, score_fr,
then each architecture's skips and upsampling layers.

Shapes follow PyTorch and Caffe: a convolution's weight is (out, in, kh, kw) with a bias (out,); a
transposed convolution's weight is (in, out, kh, kw), here (K, K, 2 * factor, 2 * factor), with no bias.
"""

from collections import OrderedDict

from .vgg import VGG16_BLOCKS, conv_names, pool_channels, scaled_channels

# The pooled maps whose class scores each architecture adds back in (score_pool4 reads pool4 ...).
SKIP_POOLS = {"fcn32s": (), "fcn16s": (4,), "fcn8s": (4, 3)}

# Each architecture's upsampling layers in order, with their factors (kernel 2 * factor, stride factor).
UPSAMPLING = {
    "fcn32s": (("upscore", 32),),
    "fcn16s": (("upscore2", 2), ("upscore16", 16)),
    "fcn8s": (("upscore2", 2), ("upscore_pool4", 2), ("upscore8", 8)),
}

FC6_KERNEL = 7  # fc6 is VGG's first classifier layer as a 7x7 convolution over pool5 (7x7 for a 224 image)


def vgg16_shapes(width=1.0, fc_channels=4096):
    """name -> shape of the trunk: conv1_1 ... conv5_3, then fc6 and fc7 unless ``fc_channels`` is None.

    ``width`` scales every trunk channel count (1 is VGG16); ``fc_channels`` is fc6's and fc7's output
    count (4096 in VGG16's classifier, whose fc6 weight is then (4096, 512, 7, 7)).
    """
    shapes = OrderedDict()
    names = iter(conv_names())
    in_channels = 3
    for channels, count in VGG16_BLOCKS:
        out_channels = scaled_channels(channels, width)
        for _ in range(count):
            name = next(names)
            shapes[f"{name}.weight"] = (out_channels, in_channels, 3, 3)
            shapes[f"{name}.bias"] = (out_channels,)
            in_channels = out_channels
    if fc_channels is not None:
        shapes["fc6.weight"] = (fc_channels, in_channels, FC6_KERNEL, FC6_KERNEL)
        shapes["fc6.bias"] = (fc_channels,)
        shapes["fc7.weight"] = (fc_channels, fc_channels, 1, 1)
        shapes["fc7.bias"] = (fc_channels,)
    return shapes


def fcn_shapes(arch, num_classes, width=1.0, fc_channels=4096):
    """name -> shape of every parameter of ``arch`` ("fcn8s", "fcn16s", "fcn32s") with K = ``num_classes``.

    ``width`` and ``fc_channels`` as in ``vgg16_shapes``; the defaults give the reference network.
    """
    if arch not in UPSAMPLING:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {', '.join(UPSAMPLING)}")
    k = num_classes
    shapes = vgg16_shapes(width, fc_channels)
    shapes["score_fr.weight"] = (k, fc_channels, 1, 1)
    shapes["score_fr.bias"] = (k,)
    for block in SKIP_POOLS[arch]:
        shapes[f"score_pool{block}.weight"] = (k, pool_channels(block, width), 1, 1)
        shapes[f"score_pool{block}.bias"] = (k,)
    for name, factor in UPSAMPLING[arch]:
        shapes[f"{name}.weight"] = (k, k, 2 * factor, 2 * factor)
    return shapes
