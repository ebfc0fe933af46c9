"""Preprocessing round trips and the augmentations on (image, label) pairs."""

import numpy as np
import pytest

from minifcn.data import DataError
from minifcn.data.transforms import (
    PREPROCESSING_CAFFE_FCN,
    PREPROCESSING_TORCHVISION,
    denormalize,
    normalize,
    random_crop,
    random_flip,
    random_scale,
    resize_label,
)


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def test_caffe_preprocessing_by_hand(image):
    x = normalize(image, PREPROCESSING_CAFFE_FCN)
    assert x.shape == (3, 5, 7) and x.dtype == np.float32 and x.flags.c_contiguous
    # Channel 0 of the input is blue, BGR, 0..255, minus the BGR mean.
    np.testing.assert_allclose(x[0], image[:, :, 2] - 104.00698793, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(x[2], image[:, :, 0] - 122.67891434, rtol=1e-6, atol=1e-4)


def test_torchvision_preprocessing_by_hand(image):
    x = normalize(image, PREPROCESSING_TORCHVISION)
    np.testing.assert_allclose(x[0], (image[:, :, 0] / 255 - 0.485) / 0.229, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[1], (image[:, :, 1] / 255 - 0.456) / 0.224, rtol=1e-5, atol=1e-6)


def test_torchvision_preprocessing_matches_torchvision(image, torch):
    # What torchvision's ToTensor() then Normalize(mean, std) compute.
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    expected = ((tensor - mean) / std).numpy()
    np.testing.assert_allclose(normalize(image, PREPROCESSING_TORCHVISION), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("preprocessing", [PREPROCESSING_CAFFE_FCN, PREPROCESSING_TORCHVISION])
def test_denormalize_inverts_normalize(image, preprocessing):
    np.testing.assert_array_equal(denormalize(normalize(image, preprocessing), preprocessing), image)
    batch = np.stack([image, image[::-1]])
    x = normalize(batch, preprocessing)
    assert x.shape == (2, 3, 5, 7)
    np.testing.assert_array_equal(denormalize(x, preprocessing), batch)


def test_bad_preprocessing(image):
    with pytest.raises(DataError, match="channel_order"):
        normalize(image, {**PREPROCESSING_CAFFE_FCN, "channel_order": "GBR"})
    with pytest.raises(DataError, match="need channel_order, scale, mean and std"):
        normalize(image, {"scale": 1.0})
    with pytest.raises(DataError, match="mean and std must be 3 numbers"):
        normalize(image, {**PREPROCESSING_CAFFE_FCN, "std": [1.0, 0.0, 1.0]})


def test_random_crop_inside_the_image(image):
    label = np.arange(35, dtype=np.int32).reshape(5, 7)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        crop_image, crop_label = random_crop(image, label, (3, 4), rng)
        assert crop_image.shape == (3, 4, 3) and crop_label.shape == (3, 4)
        top, left = divmod(int(crop_label[0, 0]), 7)
        np.testing.assert_array_equal(crop_image, image[top:top + 3, left:left + 4])
        seen.add((top, left))
    assert len(seen) > 5  # the window moves


def test_random_crop_pads_a_small_image_with_zeros_and_ignore(image):
    label = np.ones((5, 7), np.int32)
    rng = np.random.default_rng(2)
    placements = set()
    for _ in range(20):
        crop_image, crop_label = random_crop(image, label, 9, rng, ignore_index=255)
        assert crop_image.shape == (9, 9, 3) and crop_label.dtype == np.int32
        rows, cols = np.nonzero(crop_label == 1)
        top, left = rows.min(), cols.min()
        assert crop_label.sum() - 255 * (81 - 35) == 35
        np.testing.assert_array_equal(crop_image[top:top + 5, left:left + 7], image)
        padding = crop_label == 255
        assert padding.sum() == 81 - 35 and (crop_image[padding] == 0).all()
        placements.add((top, left))
    assert len(placements) > 3  # the image lands anywhere in the window


def test_random_crop_mixed_pad_and_crop(image):
    label = np.zeros((5, 7), np.int32)
    crop_image, crop_label = random_crop(image, label, (8, 4), np.random.default_rng(3), ignore_index=7)
    assert crop_image.shape == (8, 4, 3)
    assert (crop_label == 0).sum() == 5 * 4 and (crop_label == 7).sum() == 3 * 4


def test_random_flip_moves_image_and_label_together(image):
    label = np.arange(35, dtype=np.int32).reshape(5, 7)
    rng = np.random.default_rng(4)
    flipped = 0
    for _ in range(40):
        out_image, out_label = random_flip(image, label, rng)
        if out_label[0, 0] == 6:
            flipped += 1
            np.testing.assert_array_equal(out_image, image[:, ::-1])
        else:
            np.testing.assert_array_equal(out_image, image)
    assert 10 < flipped < 30


def test_random_scale_resizes_both_consistently(image):
    label = np.zeros((5, 7), np.int32)
    label[:, 4:] = 3
    label[0, 0] = 255
    rng = np.random.default_rng(5)
    sizes = set()
    for _ in range(10):
        out_image, out_label = random_scale(image, label, 0.5, 2.0, rng)
        assert out_image.shape[:2] == out_label.shape and out_image.dtype == np.uint8
        assert set(np.unique(out_label).tolist()) <= {0, 3, 255}  # nearest: no invented classes
        sizes.add(out_label.shape)
    assert len(sizes) > 3


def test_random_scale_is_bilinear_on_images():
    ramp = np.repeat(np.linspace(0, 240, 16, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(4, axis=0)
    out, _ = random_scale(ramp, np.zeros(ramp.shape[:2], np.int32), 2.0, 2.0, np.random.default_rng(0))
    row = out[2, 4:-4, 0].astype(int)
    assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 16  # new in-between values


def test_resize_label_nearest_by_hand():
    label = np.array([[1, 2], [3, 4]], np.int32)
    np.testing.assert_array_equal(resize_label(label, (4, 4)), np.kron(label, np.ones((2, 2), np.int32)))
    np.testing.assert_array_equal(resize_label(np.kron(label, np.ones((2, 2), np.int32)), (2, 2)), label)
