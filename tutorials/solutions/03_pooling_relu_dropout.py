"""Solutions to the exercises of 03_pooling_relu_dropout.ipynb.

Shapes: x (N, C, H, W); pooled y and dy (N, C, OH, OW).
"""

import numpy as np


def ceil_mode_windows(size, kernel, stride):
    """Windows along one axis in Caffe's ceil mode: ceil((size - kernel) / stride) + 1.

    A window that would start past the edge (possible when the stride exceeds the kernel) covers no
    cell and is dropped, as in PyTorch's ceil_mode=True.
    """
    windows = -(-(size - kernel) // stride) + 1          # ceil division on integers
    if (windows - 1) * stride >= size:
        windows -= 1
    return windows


def max_pool_backward_every_tie(dy, x, y, kernel=2, stride=2):
    """dx (N, C, H, W) if every cell equal to its window's maximum took the window's full gradient."""
    dx = np.zeros_like(x)
    _, _, oh, ow = dy.shape
    for i in range(oh):
        for j in range(ow):
            rows = slice(stride * i, stride * i + kernel)
            cols = slice(stride * j, stride * j + kernel)
            is_max = x[:, :, rows, cols] == y[:, :, i, j][:, :, None, None]
            dx[:, :, rows, cols] += is_max * dy[:, :, i, j][:, :, None, None]
    return dx


def unrewound_dropout_error(dropout_forward, dropout_backward, seed=0):
    """The gradient-check error of dropout when every forward pass draws a fresh mask.

    dropout_forward(x, p, rng) -> (y, mask) and dropout_backward(dy, mask) -> dx are the notebook's.
    """
    from minifcn.gradcheck import check_gradients

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 4, 5))
    masks = np.random.default_rng(seed + 1)     # never rewound: each pass drops other elements
    state = {}

    def forward():
        y, state["mask"] = dropout_forward(x, 0.5, masks)
        return y

    return max(check_gradients(forward, lambda dy: {"x": dropout_backward(dy, state["mask"])}, {"x": x}).values())
