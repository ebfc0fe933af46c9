"""Tests for minifcn.ops.fast.products: each product's fast forms against a loop of plain products."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.ops.fast import products


@pytest.mark.parametrize("n, o, c, p", [(1, 4, 6, 50), (3, 4, 6, 50), (3, 40, 60, 2)])
def test_sum_of_products_equals_a_loop_over_the_batch(xp, n, o, c, p):
    """Per-image products then a sum (long maps), the batch folded into one product (short maps with
    many channels: 3 * 2 * (40 + 60) < 3 * 40 * 60) and the single-image case all give sum_n a[n] b[n]^T."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, o, p)), rng.standard_normal((n, c, p))
    expected = sum(a[i] @ b[i].T for i in range(n))
    got = to_numpy(products.sum_of_products(xp.asarray(a), xp.asarray(b)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p, small_result", [(products.LONG_INNER - 1, 35), (products.LONG_INNER, 35),
                                             (products.LONG_INNER, 34)])
def test_product_with_transpose_is_a_times_b_transposed_either_way(xp, monkeypatch, p, small_result):
    """Short inner side, long inner side with a small (5 x 7 = 35) result, and long with a result
    above SMALL_RESULT: whichever orientation is taken, the result is a @ b.T, C-contiguous."""
    monkeypatch.setattr(products, "SMALL_RESULT", small_result)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, p)), rng.standard_normal((7, p))
    got = products.product_with_transpose(xp.asarray(a), xp.asarray(b))
    assert got.shape == (5, 7) and got.flags.c_contiguous
    np.testing.assert_allclose(to_numpy(got), a @ b.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block_bytes", [5 * 8, 5 * 8 * 3, 2**20])
def test_add_product_with_transpose_adds_a_times_b_transposed(xp, monkeypatch, block_bytes):
    """Blocks of 1 and 3 of into's 7 columns (the last one short) and one block of all: into ends
    as what it held plus a @ b.T."""
    monkeypatch.setattr(products, "ADD_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(2)
    a, b, held = rng.standard_normal((5, 30)), rng.standard_normal((7, 30)), rng.standard_normal((5, 7))
    into = xp.asarray(held.copy())
    products.add_product_with_transpose(into, xp.asarray(a), xp.asarray(b))
    np.testing.assert_allclose(to_numpy(into), held + a @ b.T, rtol=1e-12, atol=1e-12)
