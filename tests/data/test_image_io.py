"""read_image and read_label: every image kind, EXIF orientation, and every way a file can be bad."""

import numpy as np
import pytest
from PIL import Image

from minifcn.data import DataError, read_image, read_label, voc_colormap


@pytest.fixture
def picture():
    """A 4 x 6 RGB picture whose every pixel differs, so any rotation or flip shows."""
    values = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
    return values


def test_rgb_png_round_trip(tmp_path, picture):
    path = tmp_path / "a.png"
    Image.fromarray(picture).save(path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (4, 6, 3)
    np.testing.assert_array_equal(image, picture)


def test_greyscale_is_repeated_on_three_channels(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], grey)


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits(tmp_path):
    wide = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    image = read_image(tmp_path / "w.png")
    np.testing.assert_array_equal(image[:, :, 0], [[0, 100], [255, 200]])
    assert image.dtype == np.uint8


def test_rgba_drops_alpha_keeping_colour(tmp_path, picture):
    alpha = np.full(picture.shape[:2] + (1,), 7, dtype=np.uint8)
    Image.fromarray(np.concatenate([picture, alpha], axis=2), "RGBA").save(tmp_path / "t.png")
    np.testing.assert_array_equal(read_image(tmp_path / "t.png"), picture)


def test_grey_with_alpha(tmp_path):
    la = np.stack([np.full((2, 3), 90, np.uint8), np.zeros((2, 3), np.uint8)], axis=2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), np.full((2, 3, 3), 90))


def test_palette_image_is_expanded_to_its_colours(tmp_path):
    indices = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(voc_colormap().ravel().tolist())
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), voc_colormap()[indices])


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (3, lambda a: np.rot90(a, 2)),  # upside down
        (6, lambda a: np.rot90(a, -1)),  # shown turned a quarter clockwise
        (8, lambda a: np.rot90(a, 1)),  # shown turned a quarter anticlockwise
        (2, lambda a: a[:, ::-1]),  # mirrored
    ],
)
def test_exif_orientation_is_applied(tmp_path, suffix, orientation, expected):
    # Big flat blocks survive JPEG compression, so the orientation can be checked on a JPEG too.
    blocks = np.zeros((2, 3, 3), dtype=np.uint8)
    blocks[0, 0] = (255, 0, 0)
    blocks[0, 2] = (0, 255, 0)
    blocks[1, 1] = (0, 0, 255)
    picture = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{suffix}"
    Image.fromarray(picture).save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    image = read_image(path)
    want = expected(picture)
    assert image.shape == want.shape
    if suffix == ".png":
        np.testing.assert_array_equal(image, want)
    else:
        # JPEG blurs colour across block edges; the block centres keep their colour.
        np.testing.assert_allclose(image[8::16, 8::16].astype(int), want[8::16, 8::16].astype(int), atol=40)


def test_exif_orientation_applies_to_labels_too(tmp_path):
    label = np.arange(6, dtype=np.uint8).reshape(2, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(label, "L").save(tmp_path / "m.png", exif=exif)
    np.testing.assert_array_equal(read_label(tmp_path / "m.png"), np.rot90(label, -1))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.png: image file not found"):
        read_image(tmp_path / "nothere.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        read_image(tmp_path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(DataError, match=r"junk\.png: cannot read image"):
        read_image(path)
    with pytest.raises(DataError, match=r"junk\.png: cannot read mask"):
        read_label(path)


def test_truncated_png(tmp_path, picture):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.png: cannot decode image") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_decompression_bomb_over_twice_the_limit(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"bomb\.png: refused as a possible decompression bomb"):
        read_image(tmp_path / "bomb.png")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_between_the_limit_and_twice_it(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"big\.png: 12x12 pixels exceeds Pillow's decompression-bomb limit"):
        read_image(tmp_path / "big.png")


def test_label_palette_indices_are_not_colours(tmp_path):
    indices = np.array([[0, 1, 2], [20, 255, 7]], dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(voc_colormap().ravel().tolist())
    image.save(tmp_path / "v.png")
    label = read_label(tmp_path / "v.png")
    assert label.dtype == np.int32
    np.testing.assert_array_equal(label, indices)


def test_label_greyscale_and_sixteen_bit_values_are_raw(tmp_path):
    Image.fromarray(np.array([[0, 11], [3, 255]], np.uint8), "L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_label(tmp_path / "l.png"), [[0, 11], [3, 255]])
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "w.png")
    np.testing.assert_array_equal(read_label(tmp_path / "w.png"), [[0, 300]])


def test_label_grey_stored_as_rgb_is_accepted(tmp_path):
    grey = np.array([[1, 2], [3, 4]], np.uint8)
    Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_label(tmp_path / "g.png"), grey)


def test_label_colour_coded_is_refused(tmp_path, picture):
    Image.fromarray(picture).save(tmp_path / "c.png")
    with pytest.raises(DataError, match=r"c\.png: mask is a colour RGB image"):
        read_label(tmp_path / "c.png")


def test_label_float_image_is_refused(tmp_path):
    Image.fromarray(np.zeros((2, 2), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(DataError, match=r"f\.tiff: mask has image mode 'F'"):
        read_label(tmp_path / "f.tiff")
