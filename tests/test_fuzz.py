"""Randomly corrupted files never get past the readers as anything but a clean error or a correct load.

Each reader meets thousands of seeded mutations of a valid file (bytes flipped, runs overwritten,
the file cut short or grown, pieces duplicated): a minifcn checkpoint (a zip of .npy members), a
PyTorch .pth (a zip holding a pickle), and PNG and JPEG images. Every case must either load or raise
the reader's own error class (the command lines turn those into one-line messages and exit code 2);
any other exception, or a case that hangs (over CASE_SECONDS), fails with the seed that reproduces it.
"""

import contextlib
import io
import signal

import numpy as np
import pytest
from PIL import Image

from minifcn.files.checkpoint import CheckpointError, load_checkpoint, make_metadata, save_checkpoint
from minifcn.data import DataError
from minifcn.data.image_io import read_image, read_label
from minifcn.data.transforms import PREPROCESSING_CAFFE_FCN
from minifcn.files.pth import UnsafeOrCorruptPthError, load_pth

CASE_SECONDS = 120  # catches a hang; a loaded machine must still pass


def mutate(data, rng):
    """One random corruption of ``data`` (bytes)."""
    data = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:  # a few bits flipped anywhere
        for position in rng.integers(0, len(data), rng.integers(1, 9)):
            data[position] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # a run of bytes overwritten with random ones
        start = int(rng.integers(len(data)))
        run = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        data[start:start + len(run)] = run
    elif kind == 2:  # cut short
        del data[int(rng.integers(len(data))):]
    elif kind == 3:  # grown with garbage
        data += rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
    elif kind == 4:  # a piece duplicated in place
        start = int(rng.integers(len(data)))
        data[start:start] = data[start:start + int(rng.integers(1, 256))]
    else:  # bytes set to extreme values (sizes and counts become huge or negative)
        for position in rng.integers(0, len(data), rng.integers(1, 5)):
            data[position] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(data)


@contextlib.contextmanager
def time_limit(seconds, case):
    """Fail the test if the block runs longer than ``seconds`` (a hang)."""
    def expired(signum, frame):
        raise AssertionError(f"case {case} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fuzz(valid, tmp_path, suffix, read, expected_errors, cases, seed):
    """Feed ``cases`` mutations of ``valid`` to ``read(path)``; return how many loaded."""
    path = tmp_path / f"fuzzed{suffix}"
    loaded = 0
    for case in range(cases):
        rng = np.random.default_rng([seed, case])
        path.write_bytes(mutate(valid, rng))
        with time_limit(CASE_SECONDS, case):
            try:
                read(path)
                loaded += 1
            except expected_errors:
                pass
            except Exception as error:  # noqa: BLE001 (the point: nothing else may escape)
                pytest.fail(f"case {case} (seed [{seed}, {case}]): {type(error).__name__}: {error}")
    return loaded


@pytest.fixture
def checkpoint_bytes(tmp_path):
    rng = np.random.default_rng(0)
    state = {"conv1_1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "conv1_1.bias": rng.standard_normal(4).astype(np.float32),
             "score_fr.weight": rng.standard_normal((3, 4, 1, 1)).astype(np.float32)}
    metadata = make_metadata("fcn8s", PREPROCESSING_CAFFE_FCN, options={"width": 1.0}, num_classes=3,
                             class_names=["sky", "road", "car"])
    path = tmp_path / "valid.npz"
    save_checkpoint(path, state, metadata, extra_arrays={"optimizer/steps": np.array(3)})
    return path.read_bytes()


@pytest.mark.slow
def test_corrupted_checkpoints(checkpoint_bytes, tmp_path):
    loaded = fuzz(checkpoint_bytes, tmp_path, ".npz", load_checkpoint, CheckpointError, cases=1500, seed=1)
    assert loaded < 1500  # most corruptions must be noticed (the zip's CRCs see flipped data)


@pytest.mark.slow
def test_corrupted_pth_files(torch, tmp_path):
    buffer = io.BytesIO()
    generator = torch.Generator().manual_seed(0)
    torch.save({"features.0.weight": torch.randn(4, 3, 3, 3, generator=generator),
                "features.0.bias": torch.randn(4, generator=generator),
                "meta": {"epoch": 3, "names": ["a", "b"]}}, buffer)
    loaded = fuzz(buffer.getvalue(), tmp_path, ".pth", load_pth, UnsafeOrCorruptPthError, cases=1500, seed=2)
    assert loaded < 1500


@pytest.mark.slow
@pytest.mark.parametrize("image_format, read", [("PNG", read_image), ("JPEG", read_image), ("PNG", read_label)])
def test_corrupted_images(tmp_path, image_format, read):
    rng = np.random.default_rng(3)
    if read is read_label:
        picture = Image.fromarray(rng.integers(0, 12, (24, 32), dtype=np.uint8), mode="L")
    else:
        picture = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format)
    suffix = ".png" if image_format == "PNG" else ".jpg"
    fuzz(buffer.getvalue(), tmp_path, suffix, read, DataError, cases=400, seed=4)
