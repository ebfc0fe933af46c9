"""FCN-32s/16s/8s against the same networks written in PyTorch in this file, and the model contract."""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.layers import SoftmaxCrossEntropy
from minifcn.models import build_model
from minifcn.models.vgg import conv_names

from .test_alignment import REFERENCE_OFFSETS

WIDTH, FC = 0.125, 48  # narrow and shallow-headed so that parity runs in seconds; geometry is unchanged


def random_state(model, rng):
    """Random weights for every parameter (score layers included, so every gradient is non-zero)."""
    state = {}
    for name, array in model.state_dict().items():
        fan_in = np.prod(array.shape[1:]) if array.ndim > 1 else 1
        state[name] = (rng.standard_normal(array.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return state


def torch_fcn(torch, state, x, arch, geometry, scales=(1.0, 1.0)):
    """The FCN written directly with torch.nn.functional, crops taken from the prototxt constants."""
    F = torch.nn.functional
    compact = geometry == "compact"
    h = x
    pools = {}
    names = conv_names()
    for name in names:
        padding = (1 if compact else 100) if name == "conv1_1" else 1
        h = F.relu(F.conv2d(h, state[f"{name}.weight"], state[f"{name}.bias"], padding=padding))
        if name in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"):
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            pools[name[4]] = h
    h = F.relu(F.conv2d(h, state["fc6.weight"], state["fc6.bias"], padding=3 if compact else 0))
    h = F.relu(F.conv2d(h, state["fc7.weight"], state["fc7.bias"]))
    score = F.conv2d(h, state["score_fr.weight"], state["score_fr.bias"])
    offsets = {k: 0 for k in REFERENCE_OFFSETS[arch]} if compact else REFERENCE_OFFSETS[arch]

    def up(s, name, factor):
        return F.conv_transpose2d(s, state[f"{name}.weight"], stride=factor, padding=factor // 2 if compact else 0)

    def fuse(upsampled, skip, offset):
        if compact:  # the upsampled map overhangs at the bottom/right: cut it to the skip
            return upsampled[:, :, : skip.shape[2], : skip.shape[3]] + skip
        return upsampled + skip[:, :, offset : offset + upsampled.shape[2], offset : offset + upsampled.shape[3]]

    def skip(pool, name, scale):
        return F.conv2d(pool * scale, state[f"{name}.weight"], state[f"{name}.bias"])

    if arch == "fcn32s":
        out = up(score, "upscore", 32)
    elif arch == "fcn16s":
        fused = fuse(up(score, "upscore2", 2), skip(pools["4"], "score_pool4", scales[0]), offsets["fuse_pool4"])
        out = up(fused, "upscore16", 16)
    else:
        fused = fuse(up(score, "upscore2", 2), skip(pools["4"], "score_pool4", scales[0]), offsets["fuse_pool4"])
        fused = fuse(up(fused, "upscore_pool4", 2), skip(pools["3"], "score_pool3", scales[1]), offsets["fuse_pool3"])
        out = up(fused, "upscore8", 8)
    o = offsets["crop_final"]
    return out[:, :, o : o + x.shape[2], o : o + x.shape[3]]


CASES = [
    ("fcn8s", "reference", (1, 3, 97, 131)),
    ("fcn8s", "reference", (2, 3, 64, 64)),
    ("fcn8s", "reference", (1, 3, 40, 57)),
    ("fcn8s", "compact", (1, 3, 97, 131)),
    ("fcn8s", "compact", (2, 3, 64, 64)),
    ("fcn8s", "compact", (1, 3, 50, 77)),
    ("fcn16s", "reference", (1, 3, 97, 131)),
    ("fcn16s", "compact", (2, 3, 64, 64)),
    ("fcn16s", "reference", (1, 3, 45, 38)),
    ("fcn32s", "reference", (1, 3, 97, 131)),
    ("fcn32s", "compact", (2, 3, 64, 64)),
    ("fcn32s", "reference", (1, 3, 33, 70)),
]


@pytest.mark.torch
@pytest.mark.parametrize("arch, geometry, shape", CASES)
def test_forward_and_gradients_match_torch(torch, xp, arch, geometry, shape):
    """Same random weights, same input: scores agree to 1e-5 and every parameter's gradient to 1e-4
    after a cross-entropy loss with ignored pixels."""
    from minifcn.backend import to_numpy

    rng = np.random.default_rng(0)
    model = build_model(arch, num_classes=5, width=WIDTH, fc_channels=FC, geometry=geometry).eval()
    state = random_state(model, rng)
    model.load_state_dict(state)
    model.to("cpu" if xp is np else "gpu")
    x = rng.standard_normal(shape).astype(np.float32) * 50
    labels = rng.integers(0, 5, (shape[0],) + shape[2:]).astype(np.int32)
    labels[:, :5, :] = 255

    scores = model.forward(xp.asarray(x))
    loss_layer = SoftmaxCrossEntropy()
    loss = loss_layer.forward(scores, xp.asarray(labels))
    model.zero_grad()
    model.backward(loss_layer.backward())

    torch_state = {name: torch.tensor(value, requires_grad=True) for name, value in state.items()}
    torch_scores = torch_fcn(torch, torch_state, torch.tensor(x), arch, geometry)
    torch_loss = torch.nn.functional.cross_entropy(torch_scores, torch.tensor(labels).long(), ignore_index=255)
    torch_loss.backward()

    assert scores.shape == (shape[0], 5) + shape[2:]
    assert relative_error(scores, torch_scores.detach().numpy()) <= 1e-5
    assert abs(float(loss) - torch_loss.item()) <= 1e-5 * abs(torch_loss.item())
    for name, parameter in model.parameters():
        if not parameter.requires_grad:  # the fixed bilinear upsampling
            continue
        error = relative_error(to_numpy(parameter.grad), torch_state[name].grad.numpy())
        assert error <= 1e-4, f"{name}: {error}"


@pytest.mark.torch
def test_at_once_scaling_matches_torch(torch):
    """at_once scales pool4 by 0.01 and pool3 by 0.0001 before the score layers, forward and backward."""
    rng = np.random.default_rng(1)
    model = build_model("fcn8s", num_classes=4, width=WIDTH, fc_channels=FC, at_once=True).eval()
    state = random_state(model, rng)
    model.load_state_dict(state)
    x = rng.standard_normal((1, 3, 48, 52)).astype(np.float32) * 50
    scores = model.forward(x)
    dscores = rng.standard_normal(scores.shape).astype(np.float32)
    model.backward(dscores)
    torch_state = {name: torch.tensor(value, requires_grad=True) for name, value in state.items()}
    torch_scores = torch_fcn(torch, torch_state, torch.tensor(x), "fcn8s", "reference", scales=(0.01, 0.0001))
    (torch_scores * torch.tensor(dscores)).sum().backward()
    assert relative_error(scores, torch_scores.detach().numpy()) <= 1e-5
    for name in ("conv3_3.weight", "score_pool3.weight", "score_pool4.weight", "conv1_1.weight"):
        grad = dict(model.parameters())[name].grad
        assert relative_error(grad, torch_state[name].grad.numpy()) <= 1e-4, name


def test_state_dict_names_follow_the_reference():
    """Names are the reference's: conv1_1.weight ... score_pool3.bias, upscore2/upscore_pool4/upscore8."""
    names = list(build_model("fcn8s", width=0.0625, fc_channels=8).state_dict())
    expected = [f"{conv}.{kind}" for conv in conv_names() for kind in ("weight", "bias")]
    expected += ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias", "score_fr.weight", "score_fr.bias",
                 "score_pool4.weight", "score_pool4.bias", "score_pool3.weight", "score_pool3.bias",
                 "upscore2.weight", "upscore_pool4.weight", "upscore8.weight"]
    assert names == expected
    assert list(build_model("fcn32s", width=0.0625, fc_channels=8).state_dict())[-1] == "upscore.weight"
    assert list(build_model("fcn16s", width=0.0625, fc_channels=8).state_dict())[-2:] == [
        "upscore2.weight", "upscore16.weight"]


def test_reference_shapes_at_full_width():
    """At width 1 and fc 4096 the shapes are the reference's (fc6 a 7x7 conv 512->4096)."""
    shapes = {name: p.shape for name, p in build_model("fcn8s", num_classes=21).parameters()}
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3)
    assert shapes["conv5_3.weight"] == (512, 512, 3, 3)
    assert shapes["fc6.weight"] == (4096, 512, 7, 7)
    assert shapes["fc7.weight"] == (4096, 4096, 1, 1)
    assert shapes["score_fr.weight"] == (21, 4096, 1, 1)
    assert shapes["score_pool3.weight"] == (21, 256, 1, 1)
    assert shapes["upscore8.weight"] == (21, 21, 16, 16)


def test_initialisation_as_the_reference():
    """Score layers start at zero and upsampling is bilinear and fixed unless asked to learn."""
    from minifcn.layers import bilinear_kernel

    model = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=8)
    parameters = dict(model.parameters())
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not parameters[f"{name}.weight"].data.any()
    assert np.array_equal(parameters["upscore8.weight"].data, bilinear_kernel(3, 16))
    assert not parameters["upscore2.weight"].requires_grad
    learned = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=8, learn_upsampling=True)
    assert dict(learned.parameters())["upscore2.weight"].requires_grad


def test_load_state_dict_lists_every_mismatch():
    """One error names the missing, the unexpected and the wrongly shaped entries together."""
    model = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=8)
    state = model.state_dict()
    del state["fc7.bias"]
    state["extra.weight"] = np.zeros(2, np.float32)
    state["score_fr.weight"] = np.zeros((4, 8, 1, 1), np.float32)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "fc7.bias" in message and "extra.weight" in message and "score_fr.weight" in message
    assert "(3, 8, 1, 1)" in message and "(4, 8, 1, 1)" in message


def test_state_dict_round_trip():
    """load_state_dict(state_dict()) of another model makes the outputs identical."""
    rng = np.random.default_rng(3)
    a = build_model("fcn16s", num_classes=3, width=0.0625, fc_channels=8, seed=1).eval()
    a.load_state_dict(random_state(a, rng))
    b = build_model("fcn16s", num_classes=3, width=0.0625, fc_channels=8, seed=2).eval()
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((1, 3, 40, 40)).astype(np.float32)
    assert np.array_equal(a.forward(x), b.forward(x))


def test_freezing_stops_backward_and_keeps_frozen_weights_gradient_free():
    """freeze("conv2_2"): conv1_*/conv2_* get no gradient and are never backwarded; layers above
    get the same gradient as without freezing."""
    rng = np.random.default_rng(4)
    full = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=8, geometry="compact").eval()
    state = random_state(full, rng)
    full.load_state_dict(state)
    frozen = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=8, geometry="compact").eval()
    frozen.load_state_dict(state)
    frozen.freeze("conv2_2")
    x = rng.standard_normal((1, 3, 40, 40)).astype(np.float32)
    dscores = rng.standard_normal((1, 3, 40, 40)).astype(np.float32)
    for model in (full, frozen):
        model.zero_grad()
        model.forward(x)
        model.backward(dscores)
    grads_full = dict(full.parameters())
    for name, parameter in frozen.parameters():
        if name.startswith(("conv1_", "conv2_")):
            assert not parameter.requires_grad and not parameter.grad.any(), name
        elif parameter.requires_grad:
            assert relative_error(parameter.grad, grads_full[name].grad) <= 1e-6, name
    # Nothing below the freeze point kept a cache or computed an input gradient.
    assert all(layer._cache is None for _, layer in frozen.block1)
    assert not frozen.block3.conv3_1.input_grad
    with pytest.raises(ValueError, match="cannot freeze"):
        frozen.freeze("conv9_9")


def test_frozen_layers_keep_nothing_from_the_forward_pass():
    """After a training forward pass with freeze("conv2_2"), every layer of blocks 1 and 2 holds no
    cache (backward would compute nothing there), conv3_1 holds its input for its weight gradient,
    and backward then runs and fills conv3_1's gradient."""
    rng = np.random.default_rng(5)
    model = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=8, geometry="compact").train()
    model.load_state_dict(random_state(model, rng))  # non-zero score layers, so gradients reach the trunk
    model.freeze("conv2_2")
    x = rng.standard_normal((2, 3, 40, 40)).astype(np.float32)
    scores = model.forward(x)
    for block in (model.block1, model.block2):
        for name, layer in block:
            assert layer._cache is None, name
    conv3_1 = model.block3.conv3_1
    assert conv3_1._cache is not None
    model.zero_grad()
    model.backward(np.ones_like(scores))
    assert conv3_1.weight.grad.any()


def test_first_layer_never_computes_an_image_gradient():
    """conv1_1's input gradient is never computed: the image needs none."""
    model = build_model("fcn32s", num_classes=2, width=0.0625, fc_channels=8)
    assert not model.block1.conv1_1.input_grad


def test_real_vgg16_weights_load_and_segment_a_camvid_image(vgg16_weights_path, camvid_root):
    """The conv-only ImageNet VGG16 loads into FCN-8s and a CamVid image gives finite scores of its size."""
    from PIL import Image

    weights = np.load(vgg16_weights_path)
    model = build_model("fcn8s", num_classes=11, geometry="compact", fc_channels=64).eval()
    state = {f"{name}.weight": weights[f"{name}_W"] for name in conv_names()}
    state.update({f"{name}.bias": weights[f"{name}_b"] for name in conv_names()})
    model.load_state_dict(state, strict=False)
    image_path = sorted((camvid_root / "test").glob("*.png"))[0]
    image = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32)[::2, ::2]
    bgr = image[:, :, ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    x = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
    scores = model.forward(x)
    assert scores.shape == (1, 11) + image.shape[:2]
    assert np.isfinite(scores).all()
    # The trunk is really ImageNet's: pool5 features of a real image are sparse and non-trivial.
    assert dict(model.parameters())["conv1_1.weight"].data.std() > 0.01
