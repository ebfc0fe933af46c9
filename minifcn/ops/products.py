"""The batched matrix product that every weight gradient reduces to."""

from ..backend import get_array_module


def sum_of_products(a, b):
    """sum over n of a[n] @ b[n].T for a (N, O, P) and b (N, C, P): an (O, C) array.

    One matrix product per image, then a sum over the batch. ``tensordot`` would instead first copy
    both operands into (O, N*P) and (N*P, C) layouts, which on a CPU costs several times the product.
    """
    xp = get_array_module(a, b)
    if a.shape[0] == 1:
        return xp.matmul(a[0], b[0].T)
    return xp.matmul(a, b.transpose(0, 2, 1)).sum(axis=0)
