"""The batched matrix product that every weight gradient reduces to."""

from ..backend import get_array_module


def sum_of_products(a, b):
    """sum over n of a[n] @ b[n].T for a (N, O, P) and b (N, C, P): an (O, C) array.

    Two ways to compute it, chosen by the memory each moves besides the product itself:

    - one product per image, then a sum over the batch: writes and re-reads N partial (O, C) results;
    - one product over the batch folded into the inner dimension, (O, N*P) @ (N*P, C): first copies
      both operands into that layout, N*P*(O + C) numbers.

    Large maps (a 3x3 convolution on 96x96) make the copies the dearer; small maps with many channels
    (fc6's 7x7 on a 3x3 pool5, where O*C is 256 x 6272 and P is 9) make the partial results far
    dearer: for fc6 of the default model the per-image form took 12 ms and the folded one 1.
    """
    xp = get_array_module(a, b)
    n, o, p = a.shape
    c = b.shape[1]
    if n == 1:
        return xp.matmul(a[0], b[0].T)
    if n * p * (o + c) < n * o * c:
        folded_a = a.transpose(1, 0, 2).reshape(o, n * p)
        folded_b = b.transpose(1, 0, 2).reshape(c, n * p)
        return xp.matmul(folded_a, folded_b.T)
    return xp.matmul(a, b.transpose(0, 2, 1)).sum(axis=0)
