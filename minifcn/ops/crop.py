"""Cropping a map to another's size at a fixed offset, and its gradient (padding back with zeros).

FCN needs it because padding 100 in conv1_1 and the upsampling kernels leave every upsampled map
larger than the map it is fused with; the offset aligns the two (see ``minifcn.models.alignment``).
"""

from ..backend import get_array_module
from .validation import pair, require_ndim


def crop(x, offset, hw):
    """The (OH, OW) = ``hw`` window of x (N, C, H, W) starting at ``offset`` = (top, left)."""
    require_ndim("input", x, 4, "(N, C, H, W)")
    top, left = pair(offset, "offset")
    oh, ow = hw
    h, w = x.shape[2:]
    if top + oh > h or left + ow > w:
        raise ValueError(
            f"cannot crop {(oh, ow)} at offset {(top, left)} from a map of size {(h, w)} "
            f"(input shape {tuple(x.shape)})"
        )
    xp = get_array_module(x)
    return xp.ascontiguousarray(x[:, :, top : top + oh, left : left + ow])


def crop_backward(dy, input_shape, offset):
    """dx of ``input_shape`` (N, C, H, W): dy (N, C, OH, OW) put back at ``offset``, zeros around it."""
    xp = get_array_module(dy)
    top, left = pair(offset, "offset")
    oh, ow = dy.shape[2:]
    dx = xp.zeros(input_shape, dtype=dy.dtype)
    dx[:, :, top : top + oh, left : left + ow] = dy
    return dx
