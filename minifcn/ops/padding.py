"""Zero padding of NCHW maps and its adjoint, cropping the padding away."""

from ..backend import get_array_module


def pad2d(x, padding, extra_rows=0):
    """Return ``x`` (N, C, H, W) with ``padding`` = (ph, pw) zeros around it, as a new array.

    ``extra_rows`` adds zero rows below the bottom padding (the flat-shift convolution reads a few
    cells past the end of the padded map). With no padding and no extra rows ``x`` itself is returned.
    """
    ph, pw = padding
    if ph == 0 and pw == 0 and extra_rows == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * ph + extra_rows, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def unpad2d(x, padding, hw):
    """The (H, W) = ``hw`` interior of a padded map (the gradient of ``pad2d``), as a view of ``x``.

    Not copied: what reads it next (ReLU's gradient, pooling's, a sum of two paths) reads it element by
    element, and on a GPU a copy would be one more kernel launch per convolution."""
    ph, pw = padding
    h, w = hw
    return x[:, :, ph : ph + h, pw : pw + w]
