"""Helpers that write ``.pth`` files for the pth and convert tests.

Real files come from ``torch.save``; hostile ones are assembled here by hand (zip layout plus
protocol-0 pickle text, readable in the source) so the security tests run even without torch.
"""

import zipfile

import numpy as np

# torchvision's VGG16 ("D"): channel counts, "M" for a max pooling.
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def torchvision_vgg16(torch):
    """A torch module whose state dict has torchvision VGG16's names and shapes (features.N, classifier.N)."""
    nn = torch.nn
    layers, channels = [], 3
    for value in VGG16_CFG:
        if value == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, value, 3, padding=1), nn.ReLU(inplace=True)]
            channels = value
    module = nn.Module()
    module.features = nn.Sequential(*layers)
    module.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096, 1000),
    )
    return module


_SESSION_FILES = {}


def full_size_vgg16_file(torch, tmp_path_factory):
    """(path, {name: numpy array}): a full-size random torchvision VGG16 saved by torch.save.

    550 MB, so it is written once per test session and shared by every test module that asks.
    """
    if "vgg16" not in _SESSION_FILES:
        torch.manual_seed(0)
        state = torchvision_vgg16(torch).state_dict()
        path = tmp_path_factory.mktemp("torchvision") / "vgg16-random.pth"
        torch.save(state, path)
        _SESSION_FILES["vgg16"] = (path, {name: tensor.numpy() for name, tensor in state.items()})
    return _SESSION_FILES["vgg16"]


def write_torch_zip(path, pickle_bytes, storages=None, archive="archive", extra=None, byteorder=b"little"):
    """A zip laid out as torch.save writes it, with the given data.pkl and storage entries."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{archive}/data.pkl", pickle_bytes)
        if byteorder is not None:
            zf.writestr(f"{archive}/byteorder", byteorder)
        for key, data in (storages or {}).items():
            zf.writestr(f"{archive}/data/{key}", data)
        zf.writestr(f"{archive}/version", b"3\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


# --- protocol-0 pickle text, assembled by hand ------------------------------------------------------


def p_global(module, name):
    return f"c{module}\n{name}\n".encode()


def p_int(value):
    return f"I{value}\n".encode()


def p_str(value):
    return f"S'{value}'\n".encode()


def p_tuple(*items):
    return b"(" + b"".join(items) + b"t"


def p_call(callable_bytes, *args):
    """callable(*args): the REDUCE opcode."""
    return callable_bytes + p_tuple(*args) + b"R"


def p_storage(key, numel, storage_type="FloatStorage"):
    """torch's persistent id for a storage, resolved by persistent_load (BINPERSID)."""
    return p_tuple(p_str("storage"), p_global("torch", storage_type), p_str(key), p_str("cpu"), p_int(numel)) + b"Q"


def p_tensor(key, numel, offset, size, stride, storage_type="FloatStorage"):
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return p_call(
        p_global("torch._utils", "_rebuild_tensor_v2"),
        p_storage(key, numel, storage_type), p_int(offset),
        p_tuple(*[p_int(s) for s in size]), p_tuple(*[p_int(s) for s in stride]),
        b"I00\n", p_global("collections", "OrderedDict") + b")R",
    )


def p_dict(**items):
    """{key: value, ...} from already-assembled value bytes (end the pickle with pickle_of)."""
    body = b"".join(p_str(key) + value + b"s" for key, value in items.items())
    return b"(d" + body


def pickle_of(obj_bytes):
    return obj_bytes + b"."


def float_bytes(values):
    return np.asarray(values, dtype="<f4").tobytes()
