"""The matrix products that every weight gradient reduces to."""

from ...backend import get_array_module

# ``product_with_transpose`` takes the transposed product only where it pays: an inner side long
# enough (LONG_INNER) for BLAS's faster orientation to save more than the copy back into order costs,
# and a result small enough (SMALL_RESULT numbers) for that copy to stay in the caches.
# Set by: python benchmarks/cpu_benchmark.py --cases small and --cases layers --layers conv1_2,fc6.
LONG_INNER = 256
SMALL_RESULT = 2**20

# ``add_product_with_transpose`` computes at most this many bytes of its product at once: a block
# small enough to be added while it is still in the caches, large enough for BLAS to run at speed.
ADD_BLOCK_BYTES = 16 * 2**20


def product_with_transpose(a, b):
    """a @ b.T for a (O, P) and b (R, P): an (O, R) array, P the long side (pixels of a batch).

    BLAS computes the same numbers as (b @ a.T).T faster on the long-P, few-channel shapes of the
    default model's convolutions (R = C*kh*kw column rows, O outputs), but that result then has to
    be copied into (O, R) order, one pass over a weight-sized array. That pass costs more than it
    saves when P is short or the weight large (fc6 of a 500x500 image: P = 256, R = 25088, O = 4096,
    a 411 MB result whose copy takes several times as long as the product).
    """
    xp = get_array_module(a, b)
    if a.shape[1] >= LONG_INNER and a.shape[0] * b.shape[0] <= SMALL_RESULT:
        return xp.ascontiguousarray((b @ a.T).T)
    return a @ b.T


def add_product_with_transpose(into, a, b):
    """into (O, R) += a @ b.T for a (O, P) and b (R, P), a block of into's columns (b's rows) at a
    time. A weight gradient is a product as large as the weight, and adding it into the layer's
    gradient whole would first build it whole: fc6's is 103 MB on a CamVid image and 411 MB on a
    500x500 one, the largest array of those training steps."""
    columns = max(1, ADD_BLOCK_BYTES // (a.shape[0] * into.itemsize))
    for first in range(0, b.shape[0], columns):
        block = into[:, first : first + columns]  # a view: adding into it fills ``into``
        block += product_with_transpose(a, b[first : first + columns])


def sum_of_products(a, b):
    """sum over n of a[n] @ b[n].T for a (N, O, P) and b (N, C, P): an (O, C) array.

    Two ways to compute it, chosen by the memory each moves besides the product itself:

    - one product per image, then a sum over the batch: writes and re-reads N partial (O, C) results;
    - one product over the batch folded into the inner dimension, (O, N*P) @ (N*P, C): first copies
      both operands into that layout, N*P*(O + C) numbers.

    Large maps (a 3x3 convolution on 96x96) make the copies the dearer; small maps with many channels
    (fc6's 7x7 on a 3x3 pool5, where O*C is 256 x 6272 and P is 9) make the partial results far
    dearer. The rule compares the two counts of numbers moved, so it has no threshold to tune.
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
