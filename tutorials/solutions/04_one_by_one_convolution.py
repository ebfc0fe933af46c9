"""Solutions to the exercises of 04_one_by_one_convolution.ipynb."""


def conv_weight_from_channels_last(w_fc, channels, size):
    """A classifier's weight (K, S*S*C), trained on blocks flattened channels-last (as in Keras or
    TensorFlow), as a convolution weight (K, C, S, S).

    Flattening channels-last puts element (a, b, c) at index (a * S + b) * C + c, so the row reshapes
    to (S, S, C) and the channel axis moves to the front.
    """
    return w_fc.reshape(w_fc.shape[0], size, size, channels).transpose(0, 3, 1, 2)


def same_size_padding(kernel_size):
    """The padding that keeps a stride-1 convolution's output at its input's size (odd kernels)."""
    return (kernel_size - 1) // 2
