"""The crop layer that aligns an upsampled map with the map it is fused with."""

from ..ops.crop import crop, crop_backward
from .module import Module


class Crop(Module):
    """``forward(x, like)`` takes ``like``'s height and width from x, starting at ``offset`` on both
    axes (an int, or a (top, left) pair). ``like`` may be an array (N, C, H, W) or an (H, W) pair."""

    def __init__(self, offset):
        self.offset = offset

    def forward(self, x, like):
        hw = tuple(like) if isinstance(like, (tuple, list)) else tuple(like.shape[2:])
        self._save_for_backward(x.shape)
        return crop(x, self.offset, hw)

    def backward(self, dy):
        input_shape = self._saved()
        return None if input_shape is None else crop_backward(dy, input_shape, self.offset)

    def __repr__(self):
        return f"Crop(offset={self.offset})"
