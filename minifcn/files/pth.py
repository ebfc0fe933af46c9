"""Read PyTorch ``.pth`` files into NumPy arrays without importing torch, and without trusting them.

A ``.pth`` written by ``torch.save`` (torch >= 1.6) is a zip archive::

    <archive>/data.pkl          a pickle of the saved object; tensors appear as calls to
                                torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
                                whose storage is a *persistent id* ('storage', torch.FloatStorage,
                                key, location, numel)
    <archive>/data/<key>        the raw bytes of each storage
    <archive>/byteorder         "little" (absent in files from torch < 1.10: little then too)
    <archive>/version, .format_version, .storage_alignment, .data/serialization_id

Why not ``pickle.load``/``torch.load``: unpickling runs whatever callable the file names
(``os.system`` is one ``GLOBAL`` opcode away), so a downloaded checkpoint is a program. Here the
pickle is read by an Unpickler whose ``find_class`` knows a handful of names and maps each to an
inert stand-in defined in this file; every other global is refused, naming it. Rebuilding a tensor
records only *where* its values are (``_TensorRef``); no storage is read and nothing is allocated
until the whole pickle has been read and every reference checked against the zip's real entry sizes,
so a file that declares a 1 TB storage fails before a byte of it is touched.

Public API: ``load_pth(path)`` (a state dict: name -> ndarray), ``load_pth_object(path)`` (the whole
saved object, containers and arrays), ``UnsafeOrCorruptPthError`` and its subclass ``RefusedGlobalError``.
"""

import io
import pickle
import posixpath
import re
import struct
import tarfile
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .zip_archive import is_zip_archive


class UnsafeOrCorruptPthError(ValueError):
    """The file is not a readable torch checkpoint, or it asks for something we refuse to do."""


class RefusedGlobalError(UnsafeOrCorruptPthError):
    """The pickle names a global (function or class) outside the small allow-list."""


# Everything a state dict written by torch.save needs; the bytes of each storage are read by us.
# The storage classes are looked up as `torch.<Name>` globals; their element type decides the dtype.
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # bit pattern; widened to float32 when materialised
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("u1"),  # one byte per element; checked to be 0/1 and viewed as bool
    "ComplexFloatStorage": np.dtype("<c8"),
    "ComplexDoubleStorage": np.dtype("<c16"),
}

# Limits that no real checkpoint reaches and that stop a hostile one from exhausting memory.
MAX_PICKLE_BYTES = 256 * 2**20  # data.pkl describes tensors; their values live elsewhere
MAX_ZIP_ENTRIES = 1_000_000
MAX_TENSOR_ELEMENTS = 2**34
# Tensors are copied out of their storages; many views of one big storage (or a stride-0 expansion)
# could ask for far more memory than the file holds. Real files stay near 1x (tied weights: 2x).
MAX_OUTPUT_FACTOR = 4
OUTPUT_SLACK_BYTES = 2**30
MAX_NESTING = 64
MAX_DEFLATE_RATIO = 1100  # deflate cannot compress better than ~1032:1; more is a zip bomb

_LEGACY_MESSAGE = (
    "is a legacy (non-zip) torch file from torch < 1.6, which cannot be read safely here; "
    "re-save it with a recent torch (torch.save(torch.load(path), new_path), only for a file you trust)"
)


class _StorageType:
    """Stand-in for a ``torch.<Name>Storage`` class: carries only its element type."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        # A pickle that *calls* a storage class is not one that torch.save writes.
        raise UnsafeOrCorruptPthError(f"the pickle calls torch.{self.name}, which torch.save never does")

    def __setstate__(self, state):
        raise UnsafeOrCorruptPthError("the pickle tries to modify a storage type")


class _StorageRef:
    """A storage as the pickle declares it: which zip entry, which dtype, how many elements."""

    __slots__ = ("key", "dtype", "numel", "storage_type")

    def __init__(self, key, dtype, numel, storage_type):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.storage_type = storage_type

    def __setstate__(self, state):
        raise UnsafeOrCorruptPthError("the pickle tries to modify a storage")


class _TensorRef:
    """A tensor as ``_rebuild_tensor_v2`` describes it: a strided view into a storage, not yet read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride

    @property
    def numel(self):
        n = 1
        for s in self.size:
            n *= s
        return n

    def __setstate__(self, state):
        # pickle's BUILD opcode would otherwise setattr() onto a reference we have already validated.
        raise UnsafeOrCorruptPthError("the pickle tries to modify a tensor after building it")


class _PickledOrderedDict(OrderedDict):
    """``collections.OrderedDict`` as the pickle sees it.

    torch attaches a ``_metadata`` attribute to state dicts through pickle's BUILD opcode; it holds
    per-module version numbers we do not need. Accept a plain dict state and drop it, rather than let
    BUILD set arbitrary attributes.
    """

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UnsafeOrCorruptPthError("the pickle sets an unexpected state on an OrderedDict")


class _AllowedCall:
    """One of our rebuild functions as the pickle sees it: callable, and nothing else.

    Handing out the plain function would let pickle's BUILD opcode set attributes on it (its
    ``__defaults__``, for one) for the rest of the process.
    """

    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    def __setstate__(self, state):
        raise UnsafeOrCorruptPthError("the pickle tries to modify a rebuild function")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """Inert replacement for ``torch._utils._rebuild_tensor_v2``: validate and record, read nothing."""
    return _make_tensor_ref(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Inert replacement for the older ``torch._utils._rebuild_tensor``."""
    return _make_tensor_ref(storage, storage_offset, size, stride)


class _DType:
    """Stand-in for a ``torch.<dtype>`` global, which ``_rebuild_tensor_v3`` takes (newer dtypes only)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __setstate__(self, state):
        raise UnsafeOrCorruptPthError("the pickle tries to modify a dtype")


# torch >= 2.3 saves tensors of its newer dtypes as an untyped (byte) storage plus a dtype global.
_V3_DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4"), "uint64": np.dtype("<u8")}
_UNSUPPORTED_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                       "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2", "uint1", "uint2",
                       "uint3", "uint4", "uint5", "uint6", "uint7", "int1", "int2", "int3", "int4", "int5", "int6",
                       "int7", "complex32", "qint8", "quint8", "qint32", "quint4x2", "quint2x4")


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    """Inert replacement for ``torch._utils._rebuild_tensor_v3``: a byte storage viewed as ``dtype``."""
    if not isinstance(dtype, _DType):
        raise UnsafeOrCorruptPthError("_rebuild_tensor_v3 was given something that is not a dtype")
    if dtype.dtype is None:
        raise UnsafeOrCorruptPthError(f"a tensor has dtype torch.{dtype.name}, which NumPy cannot represent")
    if not isinstance(storage, _StorageRef) or storage.storage_type.name != "UntypedStorage":
        raise UnsafeOrCorruptPthError("_rebuild_tensor_v3 was given something that is not an untyped storage")
    if storage.numel % dtype.dtype.itemsize:
        raise UnsafeOrCorruptPthError(f"storage {storage.key!r} of {storage.numel} bytes does not hold whole "
                                      f"torch.{dtype.name} elements")
    typed = _StorageRef(storage.key, dtype.dtype, storage.numel // dtype.dtype.itemsize,
                        _StorageType(dtype.name, dtype.dtype))
    return _make_tensor_ref(typed, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """A ``torch.nn.Parameter`` is its tensor for our purposes."""
    if not isinstance(data, _TensorRef):
        raise UnsafeOrCorruptPthError("_rebuild_parameter was given something that is not a tensor")
    return data


def _make_tensor_ref(storage, offset, size, stride):
    """Check that a strided view (offset, size, stride) lies inside its storage; return a _TensorRef."""
    if not isinstance(storage, _StorageRef):
        raise UnsafeOrCorruptPthError("a tensor is rebuilt from something that is not a storage")
    if not _is_int(offset) or offset < 0:
        raise UnsafeOrCorruptPthError(f"a tensor has an invalid storage offset {offset!r}")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise UnsafeOrCorruptPthError("a tensor has a malformed size or stride")
    if len(size) > 32:
        raise UnsafeOrCorruptPthError(f"a tensor has {len(size)} dimensions (at most 32 are allowed)")
    if not all(_is_int(s) and s >= 0 for s in size):
        raise UnsafeOrCorruptPthError(f"a tensor has an invalid size {size!r}")
    # torch never writes negative strides; refusing them keeps the bounds check below simple.
    if not all(_is_int(s) and s >= 0 for s in stride):
        raise UnsafeOrCorruptPthError(f"a tensor has an invalid stride {stride!r}")
    ref = _TensorRef(storage, offset, size, stride)
    if ref.numel > MAX_TENSOR_ELEMENTS:
        raise UnsafeOrCorruptPthError(f"a tensor declares {ref.numel} elements (more than {MAX_TENSOR_ELEMENTS})")
    if ref.numel > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise UnsafeOrCorruptPthError(
                f"a tensor of size {size} and stride {stride} at offset {offset} reaches element {last} "
                f"of storage {storage.key!r}, which has {storage.numel} elements"
            )
    return ref


# module -> name -> the object the restricted unpickler hands out instead of the real one.
_ALLOWED_GLOBALS = {
    "collections": {"OrderedDict": _PickledOrderedDict},
    "torch._utils": {
        "_rebuild_tensor_v2": _AllowedCall(_rebuild_tensor_v2),
        "_rebuild_tensor_v3": _AllowedCall(_rebuild_tensor_v3),
        "_rebuild_tensor": _AllowedCall(_rebuild_tensor),
        "_rebuild_parameter": _AllowedCall(_rebuild_parameter),
        "_rebuild_parameter_with_state": _AllowedCall(_rebuild_parameter),
    },
    "torch": {
        **{name: _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
        **{name: _DType(name, dtype) for name, dtype in _V3_DTYPES.items()},
        **{name: _DType(name, None) for name in _UNSUPPORTED_DTYPES},
    },
    "torch.storage": {"UntypedStorage": _StorageType("UntypedStorage", np.dtype("u1"))},
}


class _Archive:
    """The validated entries of a torch zip archive: its prefix and the sizes of its storages."""

    def __init__(self, zf, path):
        self.zf = zf
        self.path = path
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise UnsafeOrCorruptPthError(f"has {len(infos)} zip entries, too many for a checkpoint")
        names = {}
        for info in infos:
            name = info.filename
            _check_entry_name(name)
            if name in names:
                raise UnsafeOrCorruptPthError(f"has the zip entry {name!r} twice")
            names[name] = info
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            if any(n.endswith(".npy") for n in names):
                raise UnsafeOrCorruptPthError("is a NumPy .npz archive, not a torch .pth file")
            raise UnsafeOrCorruptPthError("is a zip file but not a torch checkpoint (no <archive>/data.pkl)")
        if len(pickles) > 1:
            raise UnsafeOrCorruptPthError(f"has {len(pickles)} data.pkl entries; expected one")
        self.prefix = pickles[0][: -len("data.pkl")]
        if f"{self.prefix}constants.pkl" in names or any(n.startswith(f"{self.prefix}code/") for n in names):
            raise UnsafeOrCorruptPthError("is a TorchScript archive (torch.jit.save), not a torch.save checkpoint")
        for name in names:
            # Entries outside the archive folder are never read; a stray one means a tampered file.
            if not name.startswith(self.prefix):
                raise UnsafeOrCorruptPthError(f"has the zip entry {name!r} outside its archive folder")
        self.infos = names
        self.byteorder = "little"
        byteorder_name = f"{self.prefix}byteorder"
        if byteorder_name in names:
            value = self._read_small(byteorder_name).decode("ascii", "replace").strip()
            if value not in ("little", "big"):
                raise UnsafeOrCorruptPthError(f"declares an unknown byte order {value!r}")
            self.byteorder = value

    def _read_small(self, name):
        if self.infos[name].file_size > 4096:
            raise UnsafeOrCorruptPthError(f"has an oversized {name!r} entry")
        return self.zf.read(name)

    def read_pickle(self):
        info = self.infos[f"{self.prefix}data.pkl"]
        if info.file_size > MAX_PICKLE_BYTES:
            raise UnsafeOrCorruptPthError(f"has a {info.file_size}-byte data.pkl, larger than any checkpoint needs")
        _check_ratio(info)
        return self.zf.read(info.filename)

    def storage_info(self, key):
        return self.infos.get(f"{self.prefix}data/{key}")

    def read_storage_bytes(self, key):
        """The raw bytes of storage ``key`` as a writable 1-d uint8 array (sizes were checked already).

        torch stores storages uncompressed; those are read straight from the file into the array (one
        copy, not zipfile's chunk-by-chunk ones: 3x faster on VGG16's 550 MB) and CRC-checked as zipfile
        would. Anything compressed goes through zipfile.
        """
        info = self.storage_info(key)
        buffer = np.empty(info.file_size, dtype=np.uint8)
        if info.compress_type == zipfile.ZIP_STORED:
            self._read_stored(info, memoryview(buffer))
        else:
            view = memoryview(buffer)
            with self.zf.open(info) as stream:
                filled = 0
                while filled < len(buffer):
                    n = stream.readinto(view[filled:])
                    if not n:
                        raise UnsafeOrCorruptPthError(f"storage {key!r} is truncated")
                    filled += n
        return buffer

    def _read_stored(self, info, view):
        file = self.zf.fp
        file.seek(info.header_offset)
        header = file.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise UnsafeOrCorruptPthError(f"entry {info.filename!r} has a bad local header")
        flags, = struct.unpack("<H", header[6:8])
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        name = file.read(name_length).decode("utf-8" if flags & 0x800 else "cp437", "replace")
        if name != info.orig_filename:
            raise UnsafeOrCorruptPthError(f"entry {info.filename!r} does not match its local header")
        file.seek(extra_length, io.SEEK_CUR)
        if file.readinto(view) != len(view):
            raise UnsafeOrCorruptPthError(f"entry {info.filename!r} is truncated")
        if zlib.crc32(view) != info.CRC:
            raise UnsafeOrCorruptPthError(f"entry {info.filename!r} fails its CRC check (corrupt file)")

    def typed(self, raw, dtype):
        """``raw`` bytes viewed as ``dtype`` elements in native byte order (a copy only if they differ)."""
        array = raw.view(dtype.newbyteorder("<" if self.byteorder == "little" else ">"))
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return array


def _check_entry_name(name):
    """Refuse names that would escape a folder if anyone ever extracted the archive."""
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or re.match(r"^[A-Za-z]:", name)
        or any(part == ".." for part in name.split("/"))
        or posixpath.normpath(name).startswith("..")
    ):
        raise UnsafeOrCorruptPthError(f"has an unsafe zip entry name {name!r} (absolute or path traversal)")


def _check_ratio(info):
    if info.compress_type != zipfile.ZIP_STORED:
        if info.compress_type != zipfile.ZIP_DEFLATED:
            raise UnsafeOrCorruptPthError(f"entry {info.filename!r} uses an unsupported compression method")
        if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise UnsafeOrCorruptPthError(f"entry {info.filename!r} claims an impossible compression ratio")


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals and torch's storage persistent ids."""

    def __init__(self, file, archive):
        super().__init__(file)
        self.archive = archive

    def find_class(self, module, name):
        allowed = _ALLOWED_GLOBALS.get(module, {})
        if name in allowed:
            return allowed[name]
        raise RefusedGlobalError(
            f"the pickle asks for the global {module}.{name}, which is not needed to rebuild tensors "
            f"(only torch tensor/storage rebuilders and collections.OrderedDict are allowed); refused"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeOrCorruptPthError(f"the pickle has an unknown persistent id {str(pid)[:80]!r}")
        _, storage_type, key, location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise UnsafeOrCorruptPthError("a storage has an unknown type")
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,64}", key):
            raise UnsafeOrCorruptPthError(f"a storage has an invalid key {str(key)[:80]!r}")
        if not isinstance(location, str) or not _is_int(numel) or numel < 0:
            raise UnsafeOrCorruptPthError(f"storage {key!r} has an invalid location or element count")
        info = self.archive.storage_info(key)
        if info is None:
            raise UnsafeOrCorruptPthError(f"storage {key!r} is referenced but its entry data/{key} is missing")
        # Checked before anything is read or allocated: a declared size must match the real entry.
        nbytes = numel * storage_type.dtype.itemsize
        if info.file_size != nbytes:
            raise UnsafeOrCorruptPthError(
                f"storage {key!r} declares {numel} x {storage_type.name} = {nbytes} bytes "
                f"but its entry holds {info.file_size} bytes"
            )
        _check_ratio(info)
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise UnsafeOrCorruptPthError(f"storage {key!r} has inconsistent zip sizes")
        # One key may be declared again (shared storage), even under another dtype: torch views one
        # untyped storage several ways. Each declaration passes the byte-count check on its own.
        return _StorageRef(key, storage_type.dtype, numel, storage_type)


def _materialise(obj, archive):
    """Replace every _TensorRef in the unpickled tree with a C-contiguous NumPy array.

    Containers are rebuilt as plain dicts/OrderedDicts/lists/tuples; anything else that is not a
    plain scalar or string is refused. Shared references are converted once (and a pickle that
    nests a list in itself a million times over costs linear, not exponential, time).
    """
    refs = []
    seen = {}
    in_progress = set()

    def collect(node, depth):
        if depth > MAX_NESTING:
            raise UnsafeOrCorruptPthError(f"nests containers more than {MAX_NESTING} deep")
        key = id(node)
        if key in seen:
            return
        if key in in_progress:
            raise UnsafeOrCorruptPthError("contains a container that holds itself")
        if isinstance(node, _TensorRef):
            refs.append(node)
            seen[key] = node
        elif isinstance(node, dict):
            in_progress.add(key)
            for k, v in node.items():
                if not isinstance(k, (str, int)):
                    raise UnsafeOrCorruptPthError(f"has a dict key of type {type(k).__name__}")
                collect(v, depth + 1)
            in_progress.discard(key)
            seen[key] = node
        elif isinstance(node, (list, tuple)):
            in_progress.add(key)
            for v in node:
                collect(v, depth + 1)
            in_progress.discard(key)
            seen[key] = node
        elif node is None or isinstance(node, (bool, int, float, complex, str, bytes)):
            seen[key] = node
        else:
            raise UnsafeOrCorruptPthError(f"holds an object of type {type(node).__name__}, which is not a tensor")

    collect(obj, 0)
    _check_output_budget(refs, archive)

    # Read each storage's bytes once. A tensor that is the only user of its storage and covers it
    # exactly in C order becomes the storage itself (no copy: a 400 MB fc6 is not held twice);
    # others are copied out, so no two returned arrays share memory.
    users = {}
    for ref in refs:
        users.setdefault(ref.storage.key, []).append(ref)
    arrays = {}
    for key, key_refs in users.items():
        raw = archive.read_storage_bytes(key)
        for ref in key_refs:
            arrays[id(ref)] = _view(archive.typed(raw, ref.storage.dtype), ref, sole_user=len(key_refs) == 1)
        del raw

    converted = {}

    def build(node):
        key = id(node)
        if key in converted:
            return converted[key]
        if isinstance(node, _TensorRef):
            result = arrays[key]
        elif isinstance(node, dict):
            result = OrderedDict() if isinstance(node, OrderedDict) else {}
            for k, v in node.items():
                result[k] = build(v)
        elif isinstance(node, list):
            result = [build(v) for v in node]
        elif isinstance(node, tuple):
            result = tuple(build(v) for v in node)
        else:
            result = node
        converted[key] = result
        return result

    return build(obj)


def _output_itemsize(storage):
    return 4 if storage.storage_type.name == "BFloat16Storage" else storage.dtype.itemsize


def _check_output_budget(refs, archive):
    """Refuse, before reading anything, a file whose tensors would need far more memory than it holds."""
    keys = {ref.storage.key for ref in refs}
    stored = sum(archive.storage_info(key).file_size for key in keys)
    needed = sum(ref.numel * _output_itemsize(ref.storage) for ref in refs)
    if needed > MAX_OUTPUT_FACTOR * stored + OUTPUT_SLACK_BYTES:
        raise UnsafeOrCorruptPthError(
            f"its tensors would need {needed} bytes from {stored} bytes of storage "
            f"(views repeated or expanded far beyond the data); refused"
        )


def _view(data, ref, sole_user):
    """The strided view (offset, size, stride) of a 1-d storage, as a C-contiguous array of its own."""
    storage = ref.storage
    itemsize = data.dtype.itemsize
    if ref.numel == 0:
        result = np.zeros(ref.size, dtype=data.dtype)
    else:
        contiguous = all(
            st == int(np.prod(ref.size[i + 1:], dtype=np.int64)) for i, st in enumerate(ref.stride) if ref.size[i] > 1
        )
        if sole_user and contiguous and ref.offset == 0 and ref.numel == data.size:
            result = data.reshape(ref.size)
        else:
            window = data[ref.offset:]
            result = np.lib.stride_tricks.as_strided(
                window, shape=ref.size, strides=tuple(s * itemsize for s in ref.stride), writeable=False
            )
            result = np.array(result, order="C", copy=True)
    if storage.storage_type.name == "BFloat16Storage":
        # bfloat16 is the top half of a float32: widening is exact.
        result = (result.astype(np.uint32) << 16).view(np.float32)
    elif storage.storage_type.name == "BoolStorage":
        if result.size and result.max() > 1:
            raise UnsafeOrCorruptPthError(f"bool storage {storage.key!r} holds values other than 0 and 1")
        result = result.view(np.bool_)
    return result  # C-contiguous: a reshaped storage or a fresh copy (0-d stays 0-d)


# torch < 1.6 wrote a pickled magic number first: protocol 2, LONG1 of 10 bytes 0x1950a86a20f9469cfc6c.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _open_archive(path):
    """Open ``path`` as a zip, or explain in one line why it is not a torch >= 1.6 checkpoint."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
    except FileNotFoundError:
        raise UnsafeOrCorruptPthError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnsafeOrCorruptPthError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise UnsafeOrCorruptPthError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not is_zip_archive(path):
        if head == _LEGACY_MAGIC or tarfile.is_tarfile(path):
            raise UnsafeOrCorruptPthError(f"{path} {_LEGACY_MESSAGE}")
        if head[:1] == b"\x80":
            raise UnsafeOrCorruptPthError(f"{path}: a bare pickle, not a torch checkpoint; refused (pickles run code)")
        raise UnsafeOrCorruptPthError(f"{path}: not a torch checkpoint (not a zip archive)")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise UnsafeOrCorruptPthError(f"{path}: corrupt zip archive ({error})") from None


def load_pth_object(path):
    """Read the whole object saved in a torch ``.pth`` file, with tensors as NumPy arrays.

    Containers come back as dict/OrderedDict/list/tuple, scalars as Python scalars, every tensor as a
    C-contiguous array of its own (dtype kept; bfloat16 widened to float32). Raises
    ``UnsafeOrCorruptPthError`` (``RefusedGlobalError`` for a forbidden global) naming the path.
    """
    path = str(path)
    zf = _open_archive(path)
    try:
        with zf:
            archive = _Archive(zf, path)
            data = archive.read_pickle()
            unpickler = _RestrictedUnpickler(io.BytesIO(data), archive)
            obj = unpickler.load()
            return _materialise(obj, archive)
    except UnsafeOrCorruptPthError as error:  # raised inside without the path; name the file once
        raise type(error)(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError, TypeError, KeyError,
            IndexError, AttributeError, RecursionError, OverflowError, UnicodeDecodeError, zlib.error,
            struct.error, NotImplementedError, RuntimeError) as error:
        # NotImplementedError: an unknown zip version or compression; RuntimeError: a member marked
        # as encrypted (zipfile's own exception types for those; all found by fuzzing).
        # A malformed pickle or zip surfaces as any of these; none of them says "this file is bad" clearly.
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UnsafeOrCorruptPthError(f"{path}: corrupt torch checkpoint ({type(error).__name__}: {detail})") from None


# Where training scripts commonly put the model's weights inside a bigger checkpoint dict.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def load_pth(path):
    """Read a torch ``.pth`` state dict: an OrderedDict ``name -> np.ndarray`` in the file's order.

    A top-level ``{"state_dict": ...}``, ``{"model_state_dict": ...}`` or ``{"model": ...}`` wrapper
    (a training checkpoint that also holds optimizer state, epoch, ...) is unwrapped.
    """
    obj = load_pth_object(path)
    if isinstance(obj, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise UnsafeOrCorruptPthError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    state = OrderedDict()
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise UnsafeOrCorruptPthError(
                f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor; not a state dict"
            )
        state[name] = value
    return state
