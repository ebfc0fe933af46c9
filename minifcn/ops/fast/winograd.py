"""3x3 stride-1 convolution by Winograd's minimal filtering: fewer multiplications than im2col.

im2col computes each output pixel as a dot product of the 3x3 kernel with its 3x3 window: 9
multiplications per output per channel pair. Neighbouring windows overlap, and Winograd's algorithm
shares that overlap. Take one row first, F(2, 3): two outputs of a 3-tap filter g over four inputs d,

    y0 = d0*g0 + d1*g1 + d2*g2            (6 products done directly)
    y1 = d1*g0 + d2*g1 + d3*g2

come out of only 4 products, m_i = (B^T d)_i * (G g)_i, followed by y = A^T m:

          [1  0 -1  0]         [ 1    0    0 ]
    B^T = [0  1  1  0]     G = [1/2  1/2  1/2]     A^T = [1  1  1  0]
          [0 -1  1  0]         [1/2 -1/2  1/2]           [0  1 -1 -1]
          [0  1  0 -1]         [ 0    0    1 ]

(write them out: y0 = m0 + m1 + m2 = d0*g0 + d1*g1 + d2*g2). Nesting the 1-D algorithm in both
directions gives F(2x2, 3x3): a 4x4 input tile d gives a 2x2 output tile

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* multiplies element by element)

that is 16 products for 4 outputs where im2col does 4 * 9 = 36, 2.25 times fewer. The output map is
cut into 2x2 tiles, each reading a 4x4 input tile (neighbouring tiles overlap by two rows/columns).

For a convolution with C input and O output channels the products are summed over channels, and
that sum is a matrix product: for each of the 16 positions (xi, nu) in the tile,

    M[xi, nu] (P, O) = V[xi, nu] (P, C) @ U[xi, nu]^T (C, O)

with U = G g G^T the transformed kernel of every (o, c) pair, V = B^T d B the transformed input
tile of every tile and channel (P = N * tiles), and M the products summed over c. The whole
convolution is then three steps: transform the input (V) and the kernel (U), 16 matrix products
(where the time goes, 2.25x fewer multiply-adds than im2col's one product), transform back
(Y = A^T M A per tile) and lay the tiles out as the output map.

What it costs:

- the transforms: additions and copies that read and write the input and output several times
  (V is 16/4 = 4 times the input's size). They are memory traffic, and with the many small NumPy
  operations and products of a call, a cost that the saved multiplications repay only where the
  channels are not few (from 64) and the batch's maps not tiny (``choose`` has the figures). NumPy
  runs them on the calling core whatever BLAS does;
- memory: V and M would hold about 8 times the input's memory for a whole map, so they are made one
  band of tile rows at a time (``BAND_BYTES``);
- 16 smaller products per pass instead of one large one: where BLAS splits each product over
  several threads, those meet 16 times per pass while the transforms between them leave the other
  cores idle. So where BLAS has several threads (one image on all the cores), each pass cuts the
  tile rows into one run per thread (``row_parts``) and computes the runs at once, each on its own
  thread with one BLAS thread (``cores.on_cores``), transforms included; the weight gradient adds
  the runs' sums in order. Split, the transforms are shared where the other methods' copies stay on
  one core, so ``choose`` takes it from 64 channels, on maps large enough for the split products (a
  part of the map's tiles each) to stay efficient;
- float32 error: the transforms add and subtract values of similar size before the products, so
  rounding errors grow. F(2x2, 3x3) stays near im2col's error (5e-7 to 7e-7 of the largest value on
  CamVid's deep layers, 1.3 to 2 times that of ``stacked``); the larger F(4x4, 3x3) (36 products per
  16 outputs, 4x fewer) needs fractions like 1/6 and 1/24 in G and coefficients up to 8 in A^T, and
  its error is 10 to 50 times larger (up to 1.6e-5). Both sets of matrices are below; ``TILES`` names
  the one this module uses, chosen by measured speed and error.

The three passes, each on what ``prepare`` gives (the padded input, split into stride phases, below):

- ``forward``: as above;
- ``input_grad``: dx is a "full" correlation of dy (padded by 2 on every side) with the kernel
  flipped in both directions and its channel axes swapped, which is again a 3x3 stride-1
  convolution. The flipped kernel's transform is the kernel's own with its tile positions reordered,
  so the same products with U, on tiles transformed in that order (``flipped_tiles``), compute it
  (``gradients``, both gradients at once, computes only the cells of the input inside its padding);
- ``weight_grad``: the adjoint of the forward pass with respect to the kernel. Y = A^T [U * V] A is
  linear in U = G g G^T, so dU[xi, nu] = sum over tiles of (A dY A^T)[xi, nu] * V[xi, nu], again 16
  matrix products dM^T (O, P) @ V (P, C) summed over tiles and images, and dg = G^T dU G. This is the
  F(3x3, 2x2) algorithm with the roles of the matrices taken by the forward pass's transposes. V is
  computed again rather than kept from the forward pass: kept, it would hold 4 times the input's
  memory in every layer's cache until backward.

How the transforms run fast in NumPy: each 1-D transform is a few whole-array additions (the
matrices are mostly 0 and +-1) on views of the input. A tile row starts every 2 input rows, so the
input is first copied into its 2x2 "stride phases" (phase (r, s) holds the cells of rows 2i + r and
columns 2j + s); the k-th element of every tile along an axis is then a contiguous slice of one
phase (phase k % 2, starting at k // 2). The phases keep the channels last, (m, m, N, rows, cols, C),
so every addition runs over runs of whole tiles times all their channels, long however small the
map: with the channels first, a 12x12 map's additions ran over rows of 6 tiles, and on the default
model's maps the transforms cost more than the products. The products then take the transformed
tiles as the rows of V (P, C) and give M (P, O), and the output transform lays each band of tiles
back out channels first.
"""

import math
from collections import namedtuple

import numpy as np

from ...backend import get_array_module
from .cores import blas_threads, on_cores

# m outputs per tile side, tile side alpha = m + 2, and the matrices of F(m x m, 3x3).
Tiles = namedtuple("Tiles", "m alpha B_T G A_T")

F2x2_3x3 = Tiles(
    m=2,
    alpha=4,
    B_T=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
    G=np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64),
    A_T=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
)

# Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), with interpolation
# points 0, 1, -1, 2, -2 and infinity.
F4x4_3x3 = Tiles(
    m=4,
    alpha=6,
    B_T=np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64),
    G=np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=np.float64),
    A_T=np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                 dtype=np.float64),
)

# F(2x2, 3x3): float32 error near im2col's, where F(4x4, 3x3)'s is 10-50x larger, and F(4x4, 3x3) was
# no faster on one core (its larger transforms eat the products it saves; slower on 23x30 maps).
# Set by: python benchmarks/cpu_benchmark.py --cases camvid-layers (timing) and the float32 error
# against float64 on the same layers' shapes.
TILES = F2x2_3x3

# The transformed tiles V and the products M are each alpha^2 / m^2 = 4 times the size of the maps
# they come from, so for a whole map at once they would hold about 8 times the input's memory (and
# the output transform 2 more), as much as the column matrix that ``choose`` sends large maps away
# from. They are computed one band of tile rows at a time, at most this many bytes of V or M per band;
# larger bands mean fewer, longer products. Set by: --cases camvid-layers and --cases layers
# --layers conv3_2,conv4_2,conv5_2 (time and peak MB columns).
BAND_BYTES = 8 * 2**20


def tile_counts(out_hw, tiles=TILES):
    """(th, tw): the tiles down and across that cover an (OH, OW) output; the last may hang over the edge."""
    return math.ceil(out_hw[0] / tiles.m), math.ceil(out_hw[1] / tiles.m)


def _phase_cells(phase, pad, length, count, m):
    """(destination, source) slices along one axis: the cells i < ``count`` of stride phase ``phase``
    whose cell of the map padded by ``pad``, m * i + phase - pad, lies in the map's [0, length)."""
    first = max(0, -((phase - pad) // m))  # ceil((pad - phase) / m): the first cell past the padding
    start = m * first + phase - pad
    stop = min(count, first + max(0, -(-(length - start) // m)))
    if stop <= first:
        return slice(0, 0), slice(0, 0)
    return slice(first, stop), slice(start, start + m * (stop - first - 1) + 1, m)


def stride_phases(x, padding, size, tiles=TILES):
    """phases (m, m, N, *size, C) of x (N, C, H, W) padded by ``padding`` (ph, pw) zeros:
    phases[r, s, n, i, j, c] = xpad[n, c, m*i + r, m*j + s], zero past the edges. The padding is never
    built as an array of its own; the channels come last, so that a tile's numbers for all the
    channels are one contiguous run (see the module's docstring)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    m = tiles.m
    phases = xp.zeros((m, m, n) + tuple(size) + (c,), dtype=x.dtype)
    channels_last = x.transpose(0, 2, 3, 1)
    for r in range(m):
        rows_to, rows_from = _phase_cells(r, padding[0], h, size[0], m)
        for s in range(m):
            cols_to, cols_from = _phase_cells(s, padding[1], w, size[1], m)
            phases[r, s, :, rows_to, cols_to] = channels_last[:, rows_from, cols_from]
    return phases


def prepare(x, padding, tiles=TILES):
    """The input x (N, C, H, W) padded by ``padding`` and split into its stride phases (``stride_phases``),
    (m, m, N, th + 1, tw + 1, C): every tile reads m + 2 cells from m * i on, one more phase cell."""
    th, tw = tile_counts((x.shape[2] + 2 * padding[0] - 2, x.shape[3] + 2 * padding[1] - 2), tiles)
    return stride_phases(x, padding, (th + 1, tw + 1), tiles)


def combine(matrix, part, out):
    """out[i] = sum over k of matrix[i, k] * part(k), for every row i of ``matrix``.

    ``part(k)`` is the k-th input (an array view), ``out[i]`` the i-th output. One whole-array
    operation per non-zero coefficient, none for zeros; +-1 (most of them) need no multiplication.
    """
    xp = get_array_module(out)
    for i, row in enumerate(matrix):
        # A +1 term first, so that it and a +-1 term after it make one addition or subtraction.
        terms = sorted(((float(coef), k) for k, coef in enumerate(row) if coef != 0), key=lambda t: t[0] != 1)
        target = out[i]
        (first, k0), rest = terms[0], terms[1:]
        if first == 1 and rest and abs(rest[0][0]) == 1:
            (second, k1), rest = rest[0], rest[1:]
            (xp.add if second == 1 else xp.subtract)(part(k0), part(k1), out=target)
        else:
            xp.multiply(part(k0), first, out=target)
        for coef, k in rest:
            if coef == 1:
                xp.add(target, part(k), out=target)
            elif coef == -1:
                xp.subtract(target, part(k), out=target)
            else:
                target += coef * part(k)
    return out


def transform_input(phases, grid, tiles=TILES):
    """V (alpha^2, N * th * tw, C): B^T d B for every alpha x alpha tile d of the padded input, from its
    stride phases (m, m, N, th + 1, tw + 1, C). Matrix xi * alpha + nu is position (xi, nu) of the
    tiles, one row per tile."""
    xp = get_array_module(phases)
    m, alpha = tiles.m, tiles.alpha
    n, c = phases.shape[2], phases.shape[-1]
    th, tw = grid
    # Down the columns first: element k of every tile's column is phase row k % m, from tile row k // m.
    down = xp.empty((alpha, m, n, th, tw + 1, c), dtype=phases.dtype)
    combine(tiles.B_T, lambda k: phases[k % m, :, :, k // m : k // m + th], down)
    # Then along the rows, the same with the column phases, for every row xi at once (v[:, nu]): on
    # small maps the number of NumPy calls, not their sizes, is what costs.
    v = xp.empty((alpha, alpha, n, th, tw, c), dtype=phases.dtype)
    combine(tiles.B_T, lambda k: down[:, k % m, :, :, k // m : k // m + tw], v.swapaxes(0, 1))
    return v.reshape(alpha * alpha, n * th * tw, c)


def kernel_matrix(tiles, dtype, xp):
    """K (alpha^2, 9) with K @ vec(g) = vec(G g G^T) for a 3x3 kernel g (row-major vec): kron(G, G)."""
    return xp.asarray(np.kron(tiles.G, tiles.G).astype(dtype))


def transform_weight(weight, tiles=TILES):
    """U (alpha^2, O, C): G g G^T for the 3x3 kernel g of every (o, c) pair of weight (O, C, 3, 3),
    all of them in one matrix product with kron(G, G)."""
    xp = get_array_module(weight)
    o, c = weight.shape[:2]
    # K @ (9, O*C) rather than (O*C, 9) @ K^T: the product comes out in U's layout, no copy after it.
    # The forward pass's products read U transposed, as (C, O), which BLAS does without a copy (if more
    # slowly); laying the weight out as (C, O) first would cost one that reads it a number at a time
    # (0.14 of a 0.28 ms transform at 128 channels), which the faster products do not repay. The input
    # gradient's products read U as it is (``flipped_tiles``).
    u = kernel_matrix(tiles, weight.dtype, xp) @ weight.reshape(o * c, 9).T
    return u.reshape(tiles.alpha**2, o, c)


def transform_output(products, out, tiles=TILES):
    """Write A^T M A for every tile of the products M (alpha^2, N * rows * tw, O) into ``out``
    (N, rows, m, tw, m, O), the output map of those tile rows, channels last."""
    xp = get_array_module(products)
    m, alpha = tiles.m, tiles.alpha
    n, rows, _, tw, _, o = out.shape
    products = products.reshape(alpha, alpha, n, rows, tw, o)
    across = xp.empty((alpha, m, n, rows, tw, o), dtype=products.dtype)
    combine(tiles.A_T, lambda nu: products[:, nu], across.swapaxes(0, 1))  # every row xi at once
    # Written straight into place: output (i, j) of every tile is a strided view of the map.
    combine(tiles.A_T, lambda xi: across[xi], out.transpose(2, 4, 0, 1, 3, 5))


def band_rows(tiles, channels, n, tw, itemsize):
    """Tile rows per band: the transformed tiles of one band for ``channels`` channels, alpha^2 numbers
    per tile, within BAND_BYTES (at least one row)."""
    return max(1, BAND_BYTES // (tiles.alpha**2 * channels * n * tw * itemsize))


def bands(start, stop, rows):
    """(first, count) of each band of at most ``rows`` tile rows, from tile row ``start`` to ``stop``."""
    return [(first, min(rows, stop - first)) for first in range(start, stop, rows)]


def row_parts(th, xp):
    """(start, stop) of the runs of tile rows that the cores compute at once: one run per BLAS thread
    (``cores.on_cores``), as equal as possible, or a single run on a GPU or where BLAS has one thread."""
    parts = min(th, blas_threads()) if xp is np else 1
    bounds = [th * index // parts for index in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def forward(phases, weight, stride, out_hw, tiles=TILES):
    """y (N, O, OH, OW) from the prepared input (``prepare``) and weight (O, C, 3, 3)."""
    u_t = transform_weight(weight, tiles).transpose(0, 2, 1)  # (alpha^2, C, O), a view
    return _convolve(phases, u_t, out_hw, tiles)


def _convolve(phases, right, out_hw, tiles):
    """y (N, O, OH, OW) from the prepared input and ``right`` (alpha^2, C, O), the matrices the
    transformed tiles are multiplied by: M = V @ right, y = A^T M A."""
    xp = get_array_module(phases, right)
    m = tiles.m
    n, c = phases.shape[2], phases.shape[-1]
    o = right.shape[2]
    th, tw = tile_counts(out_hw, tiles)
    y = xp.empty((n, o, th * m, tw * m), dtype=phases.dtype)
    most_rows = band_rows(tiles, max(c, o), n, tw, phases.itemsize)

    def compute(part):  # the output tiles of one run of tile rows, band by band
        for first, rows in bands(*part, most_rows):
            v = transform_input(phases[:, :, :, first : first + rows + 1], (rows, tw), tiles)  # (a^2, P, C)
            band = xp.empty((n, rows, m, tw, m, o), dtype=phases.dtype)  # channels last, as the products come
            transform_output(xp.matmul(v, right), band, tiles)
            band_map = band.reshape(n, rows * m, tw * m, o)
            y[:, :, first * m : (first + rows) * m] = band_map.transpose(0, 3, 1, 2)  # laid out channels first

    on_cores(compute, row_parts(th, xp))
    if (th * m, tw * m) != tuple(out_hw):
        y = xp.ascontiguousarray(y[:, :, : out_hw[0], : out_hw[1]])  # the tiles that hang over the edge
    return y


def transform_output_grad(dy_phases, tiles=TILES):
    """dM (alpha^2, N * rows * tw, O) = A dY A^T for every m x m tile dY of dy, from dy's stride phases
    (m, m, N, rows, tw, O) (``stride_phases``: [i, j] is dY[i, j] of each tile): the adjoint of
    ``transform_output``."""
    xp = get_array_module(dy_phases)
    m, alpha = tiles.m, tiles.alpha
    n, rows, tw, o = dy_phases.shape[2:]
    a = tiles.A_T.T
    down = xp.empty((alpha, m, n, rows, tw, o), dtype=dy_phases.dtype)
    combine(a, lambda i: dy_phases[i], down)
    dm = xp.empty((alpha, alpha, n, rows, tw, o), dtype=dy_phases.dtype)
    combine(a, lambda j: down[:, j], dm.swapaxes(0, 1))  # every row xi at once
    return dm.reshape(alpha * alpha, n * rows * tw, o)


def weight_grad(phases, dy, kernel, stride, tiles=TILES):
    """dweight (O, C, 3, 3) from the prepared input (``prepare``) and dy (N, O, OH, OW):
    dU = sum over tiles of dM times V, then dg = G^T dU G for every (o, c) pair."""
    xp = get_array_module(phases, dy)
    n, c = phases.shape[2], phases.shape[-1]
    o = dy.shape[1]
    th, tw = tile_counts(dy.shape[2:], tiles)
    # Zeros for the outputs past the edge, which the forward pass cut off: they had no gradient.
    dy_phases = stride_phases(dy, (0, 0), (th, tw), tiles)
    most_rows = band_rows(tiles, max(c, o), n, tw, phases.itemsize)

    def accumulate(part):  # dU (alpha^2, O, C) of one run of tile rows, summed over its bands
        du = None
        for first, rows in bands(*part, most_rows):
            v = transform_input(phases[:, :, :, first : first + rows + 1], (rows, tw), tiles)  # (a^2, P, C)
            dm = transform_output_grad(dy_phases[:, :, :, first : first + rows], tiles)  # (a^2, P, O)
            product = xp.matmul(dm.transpose(0, 2, 1), v)
            du = product if du is None else xp.add(du, product, out=du)
        return du

    # The runs' sums added in order, so the result does not depend on which thread finishes first.
    du, *others = on_cores(accumulate, row_parts(th, xp))
    for other in others:
        du += other
    # dW (O*C, 9) = dU^T @ K, the adjoint of transform_weight's product.
    dweight = du.reshape(tiles.alpha**2, o * c).T @ kernel_matrix(tiles, dy.dtype, xp)
    return dweight.reshape(o, c, 3, 3)


def flipped_tiles(tiles):
    """Tiles that compute, with the kernel's own transform U, the correlation with the kernel flipped in
    both directions; None where there are none.

    Flipping a kernel g is J g J, J the reversal. Where reversing G's columns only reorders and scales
    its rows, G J = P G for P with one non-zero s_i at (i, p(i)) in each row, the flipped kernel's
    transform is P U P^T: position (xi, nu) holds s_xi s_nu U[p(xi), p(nu)]. Take position a of the
    new tiles to be position q(a) = p^-1(a) of the old, scaled by s_q(a), for the input (B^T's rows)
    and the output (A^T's columns): then every product multiplies by U[a, b] itself. For F(2x2, 3x3)
    P swaps positions 0 and 3; F(4x4, 3x3)'s points are not symmetric that way, so it has none.
    Used by the input gradient: the flipped kernel is never built, and its products read U as
    the forward pass computes it, (O, C) matrices, the layout BLAS reads fastest."""
    order, scales = [], []
    for row in tiles.G[:, ::-1]:
        found = [(j, scale) for j, scale in enumerate(_multiple(row, other) for other in tiles.G) if scale]
        if not found:
            return None
        order.append(found[0][0])
        scales.append(found[0][1])
    if sorted(order) != list(range(len(order))):
        return None
    inverse = np.argsort(order)  # q = p^-1
    return tiles._replace(B_T=np.asarray(scales)[inverse, None] * tiles.B_T[inverse], A_T=tiles.A_T[:, inverse])


def _multiple(row, other):
    """s where ``row`` is s times ``other`` (s not 0), else 0."""
    largest = np.argmax(np.abs(other))
    scale = row[largest] / other[largest]
    return scale if scale != 0 and np.allclose(row, scale * other) else 0.0


# flipped_tiles of each Tiles used so far, by id (the Tiles kept alongside, so the id stays its own):
# finding the order takes longer than a small layer's products.
_FLIPPED = {}


def _correlate_flipped(dy, weight, padding, out_hw, tiles):
    """dy (N, O, OH, OW) padded by ``padding``, correlated with the kernel flipped in both directions
    and its channel axes swapped (C, O, 3, 3): (N, C, *out_hw)."""
    xp = get_array_module(dy, weight)
    if id(tiles) not in _FLIPPED:
        _FLIPPED[id(tiles)] = (tiles, flipped_tiles(tiles))
    flipped = _FLIPPED[id(tiles)][1]
    if flipped is None:
        swapped = xp.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return forward(prepare(dy, padding, tiles), swapped, (1, 1), out_hw, tiles)
    return _convolve(prepare(dy, padding, flipped), transform_weight(weight, tiles), out_hw, flipped)


def input_grad(dy, weight, stride, padded_hw, tiles=TILES):
    """dxpad (N, C, Hp, Wp): the full correlation of dy (N, O, OH, OW), padded by 2, with the flipped kernel."""
    return _correlate_flipped(dy, weight, (2, 2), padded_hw, tiles)


def gradients(phases, dy, weight, padding, input_hw, tiles=TILES):
    """(dx, dweight) for dy (N, O, OH, OW): ``weight_grad``'s dweight, and dx (N, C, H, W) for the
    input's own cells only.

    ``input_grad`` computes the gradient of the whole padded map, whose border is then cut off: on
    CamVid's deep maps (23x30 padded to 25x32) 8% more tiles, and a copy of the map. Cell i of the
    input is cell i + p of the padded one, which reads dy padded by 2 from i + p on, so dx alone is
    the same correlation over dy padded by 2 - p. None for a padding deeper than 2, which
    ``conv2d_backward`` then computes with the two passes above. The weight gradient comes first, so
    that its transformed tiles and dx never hold memory at once.
    """
    if max(padding) > 2:
        return None
    dweight = weight_grad(phases, dy, (3, 3), (1, 1), tiles)
    dx = _correlate_flipped(dy, weight, (2 - padding[0], 2 - padding[1]), input_hw, tiles)
    return dx, dweight
