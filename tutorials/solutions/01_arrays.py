"""Solutions to the exercises of 01_arrays.ipynb."""

import numpy as np


def image_to_batch(image):
    """An image file's (H, W, 3) uint8 array as a batch of one, (N, C, H, W) = (1, 3, H, W) float32."""
    return image.transpose(2, 0, 1)[None].astype(np.float32)


def mean_over_labelled(values, labels, ignore_index=255):
    """The mean of float32 ``values`` (H, W) over the pixels whose label is not ``ignore_index``, as float32.

    The count of labelled pixels is a NumPy integer; dividing a float32 by it would promote the result
    to float64, so the count is converted to the values' dtype first.
    """
    labelled = labels != ignore_index
    return values[labelled].sum() / values.dtype.type(labelled.sum())
