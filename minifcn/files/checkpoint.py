"""minifcn checkpoints: one ``.npz`` of named arrays plus a JSON ``__metadata__`` entry.

Layout (**contract**: train, evaluate, predict and convert all read and write it)::

    <name>.npy                one per parameter, e.g. conv1_1.weight.npy, fc6.weight.npy
    __extra__/<name>.npy      optional arrays that are not parameters (optimizer momentum, ...)
    __metadata__.npy          1-d uint8 array: the UTF-8 bytes of a JSON object

A checkpoint loads with ``np.load(path, allow_pickle=False)``: nothing in it is pickled, so opening one
runs no code. The metadata says what the arrays are and how to feed the network::

    format         "minifcn-checkpoint"
    version        1
    arch           "fcn8s" | "fcn16s" | "fcn32s" | "vgg16"
    options        the model's constructor options (width, fc_channels, geometry, at_once, ...)
    num_classes    K (null for a bare vgg16 trunk)
    class_names    K strings;  class_colors: K [r, g, b] triples, 0..255
    preprocessing  {"channel_order": "BGR"|"RGB", "scale": 255.0|1.0, "mean": [3], "std": [3]}
                   the network sees x = (pixel / 255 * scale - mean) / std, channels in channel_order
                   (mean and std listed in that order too)
    training       optional: epoch, iteration, best score, ...
    source         optional: where the weights came from (a conversion, an initialisation)

Writes are atomic: the file is written beside its destination under a temporary name, flushed to
disk, then renamed over it, so a crash or a full disk mid-save leaves the previous checkpoint intact.
"""

import json
import math
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..backend import to_numpy
from ..data.transforms import (  # noqa: F401  (re-exported: checkpoints name them)
    PREPROCESSING_CAFFE_FCN,
    PREPROCESSING_CAFFE_VGG16,
    PREPROCESSING_TORCHVISION,
)
from .atomic import atomic_write
from .zip_archive import is_zip_archive

FORMAT = "minifcn-checkpoint"
VERSION = 1
METADATA_KEY = "__metadata__"
EXTRA_PREFIX = "__extra__/"
ARCHES = ("fcn8s", "fcn16s", "fcn32s", "vgg16")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or written; the message names the path and what is wrong."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``state`` (parameter name -> array), ``metadata`` (dict), ``extra`` arrays."""

    state: dict
    metadata: dict
    extra: dict = field(default_factory=dict)
    path: str = None

    @property
    def arch(self):
        return self.metadata["arch"]

    @property
    def num_classes(self):
        return self.metadata.get("num_classes")

    @property
    def options(self):
        return self.metadata.get("options", {})

    @property
    def preprocessing(self):
        return self.metadata["preprocessing"]

    @property
    def class_names(self):
        return self.metadata.get("class_names")

    @property
    def class_colors(self):
        return self.metadata.get("class_colors")


# ---------------------------------------------------------------------------------------------- metadata


def _json_default(value):
    """Let NumPy scalars and small arrays (an epoch counter, a mean) into the JSON metadata."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _check_preprocessing(pre):
    if not isinstance(pre, dict):
        return "preprocessing must be a dict"
    if pre.get("channel_order") not in ("BGR", "RGB"):
        return f"preprocessing.channel_order must be 'BGR' or 'RGB', got {pre.get('channel_order')!r}"
    scale = pre.get("scale")
    if not _is_number(scale) or not scale > 0:
        return f"preprocessing.scale must be a positive number, got {scale!r}"
    for key in ("mean", "std"):
        values = pre.get(key)
        if not isinstance(values, (list, tuple)) or len(values) != 3 or not all(_is_number(v) for v in values):
            return f"preprocessing.{key} must be 3 numbers, got {values!r}"
    if not all(v > 0 for v in pre["std"]):
        return f"preprocessing.std must be positive, got {pre['std']!r}"
    return None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_metadata(metadata):
    """Return a list of problems with a metadata dict (empty when it is valid)."""
    if not isinstance(metadata, dict):
        return ["metadata must be a dict"]
    problems = []
    if metadata.get("format") != FORMAT:
        problems.append(f"format must be {FORMAT!r}, got {metadata.get('format')!r}")
    version = metadata.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(f"version must be a positive integer, got {version!r}")
    if metadata.get("arch") not in ARCHES:
        problems.append(f"arch must be one of {', '.join(ARCHES)}, got {metadata.get('arch')!r}")
    if not isinstance(metadata.get("options", {}), dict):
        problems.append("options must be a dict")
    k = metadata.get("num_classes")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        problems.append(f"num_classes must be a positive integer or null, got {k!r}")
    if k is None and metadata.get("arch") in ("fcn8s", "fcn16s", "fcn32s"):
        problems.append(f"num_classes is required for arch {metadata.get('arch')}")
    names = metadata.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append("class_names must be a list of strings")
        elif isinstance(k, int) and len(names) != k:
            problems.append(f"class_names has {len(names)} entries for {k} classes")
    colors = metadata.get("class_colors")
    if colors is not None:
        if not isinstance(colors, list) or not all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in colors
        ):
            problems.append("class_colors must be a list of [r, g, b] integer triples in 0..255")
        elif isinstance(k, int) and len(colors) != k:
            problems.append(f"class_colors has {len(colors)} entries for {k} classes")
    problem = _check_preprocessing(metadata.get("preprocessing"))
    if problem:
        problems.append(problem)
    return problems


def make_metadata(arch, preprocessing, *, options=None, num_classes=None, class_names=None, class_colors=None,
                  training=None, source=None):
    """A checkpoint metadata dict with ``format`` and ``version`` filled in (validated; CheckpointError)."""
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "options": dict(options or {}),
        "num_classes": num_classes,
        "class_names": None if class_names is None else list(class_names),
        "class_colors": None if class_colors is None else [[int(v) for v in c] for c in class_colors],
        "preprocessing": dict(preprocessing),
    }
    if training is not None:
        metadata["training"] = training
    if source is not None:
        metadata["source"] = source
    return _normalised_metadata(metadata)


def _normalised_metadata(metadata, path=None):
    """Round-trip through JSON (so what is saved is what loads back) and validate."""
    where = f"{path}: " if path else ""
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{where}metadata must be a dict, got {type(metadata).__name__}")
    metadata = {"format": FORMAT, "version": VERSION, **metadata}
    try:
        text = json.dumps(metadata, default=_json_default)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{where}metadata is not JSON serialisable: {error}") from None
    metadata = json.loads(text)
    problems = validate_metadata(metadata)
    if problems:
        raise CheckpointError(f"{where}invalid metadata: {'; '.join(problems)}")
    return metadata


# ---------------------------------------------------------------------------------------------- saving


def _check_name(name):
    """Array names become zip entry names: keep them plain, and keep ``__`` for our own entries."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"array names must be non-empty strings, got {name!r}")
    parts = name.split("/")
    if name.startswith("__") or "\\" in name or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise CheckpointError(f"invalid array name {name!r} (reserved prefix '__', or not a plain relative name)")


def _as_host_array(name, value):
    array = to_numpy(value)
    if array.dtype == object:
        raise CheckpointError(f"array {name!r} has dtype object, which cannot be saved without pickle")
    return array


def _entries(state, metadata, extra_arrays):
    entries = []
    for name, value in state.items():
        _check_name(name)
        entries.append((name, _as_host_array(name, value)))
    for name, value in (extra_arrays or {}).items():
        _check_name(name)
        entries.append((EXTRA_PREFIX + name, _as_host_array(name, value)))
    text = json.dumps(metadata, default=_json_default)
    entries.append((METADATA_KEY, np.frombuffer(text.encode("utf-8"), dtype=np.uint8)))
    return entries


def _write_npz(file, entries, compress):
    """Write ``(name, array)`` pairs as an .npz into an open binary file, as np.savez does, no pickle."""
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(file, "w", compression=compression, allowZip64=True) as zf:
        for name, array in entries:
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def save_checkpoint(path, state, metadata, extra_arrays=None, overwrite=True, compress=False):
    """Write ``state`` (name -> array), ``metadata`` (dict) and ``extra_arrays`` to ``path`` atomically.

    ``path`` is used exactly as given (no ``.npz`` appended). ``metadata`` is validated (see the module
    docstring; ``format`` and ``version`` are filled in). Arrays may be NumPy or CuPy; they are stored
    as they are (dtype kept). ``extra_arrays`` (optimizer state, ...) come back in ``Checkpoint.extra``.
    With ``overwrite=False`` an existing file is never replaced (FileExistsError).

    On any failure the temporary file is removed and whatever was at ``path`` before is untouched.
    Returns the metadata as written.
    """
    path = os.fspath(path)
    metadata = _normalised_metadata(metadata, path)
    entries = _entries(state, metadata, extra_arrays)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(f"{path}: directory {directory} does not exist")
    with atomic_write(path, overwrite) as file:
        _write_npz(file, entries, compress)
    return metadata


# ---------------------------------------------------------------------------------------------- loading


def _decode_metadata(array, path):
    if array.dtype == np.uint8 and array.ndim == 1:
        text = array.tobytes().decode("utf-8")
    elif array.dtype.kind == "U" and array.size == 1:
        text = str(array.reshape(()))
    else:
        raise CheckpointError(f"{path}: __metadata__ has dtype {array.dtype} and shape {array.shape}, not JSON text")
    return json.loads(text)


def _check_file(path):
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not is_zip_archive(path):
        raise CheckpointError(f"{path}: not a minifcn checkpoint (not an .npz archive, or truncated)")


def _corrupt(path, error):
    detail = str(error).splitlines()[0] if str(error) else ""
    return CheckpointError(f"{path}: corrupt or truncated checkpoint ({type(error).__name__}: {detail})")


# A checkpoint is read in two passes so that nothing it declares is allocated before it is checked:
# first every member's .npy header (shape and dtype, a few hundred bytes each) and the metadata, then,
# once each declared array fits the architecture the metadata names, the arrays themselves.
MAX_METADATA_BYTES = 64 * 2**20  # the JSON of a long run's log is a few hundred kilobytes
FLOAT_KINDS = "f"


def _member_header(zf, info, path):
    """``(shape, dtype)`` that the .npy member ``info`` declares, read from its header alone."""
    if not info.filename.endswith(".npy"):
        raise CheckpointError(f"{path}: entry {info.filename!r} is not a .npy array")
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        header_bytes = member.tell()
    name = info.filename[:-len(".npy")]
    if dtype.hasobject:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (entry {name!r} is a pickled object array, "
                              f"refused as with allow_pickle=False: loading it could run code)")
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - header_bytes:
        raise CheckpointError(f"{path}: entry {name!r} declares shape {shape} ({dtype}, {declared} bytes) but holds "
                              f"{info.file_size - header_bytes} bytes: corrupt or forged")
    return shape, dtype


def _check_declared(headers, shapes, metadata, path):
    """Every declared array against ``shapes`` (name -> shape of the network's parameters): a parameter
    has its shape and a floating dtype; anything else (optimizer state) is no larger than the largest
    parameter, and all of them together are at most a few copies of the model (Adam keeps two moments;
    float64 doubles them)."""
    largest = max(math.prod(shape) for shape in shapes.values())
    budget = 4 * sum(math.prod(shape) for shape in shapes.values()) * 8 + 2**20
    total = 0
    for name, (shape, dtype) in headers.items():
        parameter = name[len(EXTRA_PREFIX):] if name.startswith(EXTRA_PREFIX) else name
        if parameter in shapes and not name.startswith(EXTRA_PREFIX):
            if tuple(shape) != tuple(shapes[parameter]):
                raise CheckpointError(f"{path}: shape mismatch for {name}: expected {tuple(shapes[parameter])} (the "
                                      f"{metadata['arch']} its metadata describes), the file declares {tuple(shape)}")
            if dtype.kind not in FLOAT_KINDS:
                raise CheckpointError(f"{path}: {name} has dtype {dtype}, not floating point")
        elif math.prod(shape) > largest:
            raise CheckpointError(f"{path}: entry {name!r} declares shape {tuple(shape)}, larger than any parameter "
                                  f"of the network: corrupt or forged")
        total += math.prod(shape) * dtype.itemsize
    if total > budget:
        raise CheckpointError(f"{path}: its arrays declare {total:,} bytes, more than this network needs")


def read_npy_headers(path):
    """{name: (shape, dtype)} that each ``.npy`` member of the zip at ``path`` declares, read from the
    headers alone (nothing is allocated); CheckpointError when a member holds other than what it declares."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {info.filename[:-len(".npy")]: _member_header(zf, info, path) for info in zf.infolist()}
    except CheckpointError:
        raise
    except Exception as error:  # BadZipFile, EOFError, ValueError (a malformed header), OSError
        raise _corrupt(path, error) from None


def _read_member(zf, name):
    with zf.open(name + ".npy") as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _read_arrays(path, names=None, shapes=None):
    """{name: array} of the .npz at ``path`` (only ``names`` if given); CheckpointError on any problem.

    Every member's declared size must be what it holds; with ``shapes`` (a function of the metadata
    returning name -> shape, see ``load_checkpoint``) each declared shape and dtype is also checked
    against the architecture before any array is allocated."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename[:-len(".npy")] if info.filename.endswith(".npy") else info.filename: info
                     for info in zf.infolist()}
            if METADATA_KEY not in infos:
                hint = " (convert it with python -m minifcn.convert)" if infos else ""
                raise CheckpointError(f"{path}: no {METADATA_KEY} entry: not a minifcn checkpoint{hint}")
            headers = {name: _member_header(zf, info, path)
                       for name, info in infos.items() if names is None or name in names}
            shape, dtype = headers[METADATA_KEY]
            if math.prod(shape) * dtype.itemsize > MAX_METADATA_BYTES:
                raise CheckpointError(f"{path}: __metadata__ declares {math.prod(shape) * dtype.itemsize:,} bytes, "
                                      f"not the JSON of a checkpoint")
            arrays[METADATA_KEY] = _read_member(zf, METADATA_KEY)
            if shapes is not None:
                metadata = _parse_metadata(arrays[METADATA_KEY], path)
                try:
                    expected = shapes(metadata)
                except ValueError as error:
                    raise CheckpointError(f"{path}: {error}") from None
                _check_declared({n: h for n, h in headers.items() if n != METADATA_KEY}, expected, metadata, path)
            for name in headers:
                if name != METADATA_KEY:
                    arrays[name] = _read_member(zf, name)
    except CheckpointError:
        raise
    except Exception as error:  # BadZipFile (CRC), EOFError, ValueError (pickled array), OSError, zlib.error
        raise _corrupt(path, error) from None
    return arrays


def first_non_finite(arrays):
    """The name of the first floating-point array in ``arrays`` (name -> array) holding a NaN or an
    infinity, else None. Checked in slices, so that a large array needs no array-sized mask."""
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in "fc":
            continue
        flat = array.reshape(-1)
        for start in range(0, flat.size, 1 << 20):
            if not np.isfinite(flat[start:start + (1 << 20)]).all():
                return name
    return None


def _check_finite(arrays, path):
    """Refuse NaN or infinite weights: a network holding them predicts nothing and trains no further."""
    name = first_non_finite(arrays)
    if name is not None:
        raise CheckpointError(f"{path}: {name} holds NaN or infinite values: these weights are unusable "
                              f"(from a run whose loss diverged?); use an earlier checkpoint")


def _parse_metadata(array, path):
    try:
        metadata = _decode_metadata(array, path)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: __metadata__ is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise CheckpointError(f"{path}: not a minifcn checkpoint (format {found!r}, expected {FORMAT!r})")
    version = metadata.get("version")
    if isinstance(version, int) and version > VERSION:
        raise CheckpointError(
            f"{path}: written by a newer minifcn (format version {version}; this one reads up to {VERSION})"
        )
    problems = validate_metadata(metadata)
    if problems:
        raise CheckpointError(f"{path}: invalid metadata: {'; '.join(problems)}")
    return metadata


def load_checkpoint_metadata(path):
    """Only the metadata dict of a checkpoint (its arrays are not read): what arch, classes, input."""
    path = os.fspath(path)
    _check_file(path)
    return _parse_metadata(_read_arrays(path, [METADATA_KEY])[METADATA_KEY], path)


def load_checkpoint(path, shapes=None):
    """Read a minifcn checkpoint; return a ``Checkpoint``. Any problem raises ``CheckpointError``: among
    them members whose header declares more bytes than they hold, and NaN or infinite values.

    ``shapes``, a function of the metadata dict returning name -> shape of the network it describes
    (``inference.expected_shapes``; ValueError for options no network could have), makes every member's
    declared shape and dtype be checked against it before any array is allocated: a small file cannot
    make the reader allocate more than the network it names needs."""
    path = os.fspath(path)
    _check_file(path)
    arrays = _read_arrays(path, shapes=shapes)
    metadata = _parse_metadata(arrays.pop(METADATA_KEY), path)
    _check_finite(arrays, path)
    state, extra = {}, {}
    for name, array in arrays.items():
        if name.startswith(EXTRA_PREFIX):
            extra[name[len(EXTRA_PREFIX):]] = array
        else:
            state[name] = array
    return Checkpoint(state=state, metadata=metadata, extra=extra, path=path)


# ---------------------------------------------------------------------------------------------- matching


def describe_mismatch(expected_shapes, state):
    """Compare a state dict with the shapes a model expects; return one line per problem.

    ``expected_shapes``: name -> shape (tuple); ``state``: name -> array (anything with ``.shape``).
    Lists missing names (in the model's order), shape mismatches, then unexpected names; empty when
    everything matches.
    """
    missing, wrong, unexpected = [], [], []
    for name, shape in expected_shapes.items():
        shape = tuple(int(s) for s in shape)
        if name not in state:
            missing.append(f"missing {name} (expected shape {shape})")
        else:
            got = tuple(int(s) for s in np.shape(state[name]))
            if got != shape:
                wrong.append(f"shape mismatch for {name}: expected {shape}, got {got}")
    for name in state:
        if name not in expected_shapes:
            unexpected.append(f"unexpected {name} (shape {tuple(int(s) for s in np.shape(state[name]))})")
    return missing + wrong + unexpected


def summarize_mismatch(problems, limit=4):
    """One line from ``describe_mismatch``'s list, for an error message: the first few, then a count."""
    shown = "; ".join(problems[:limit])
    more = len(problems) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
