"""Numerical gradients by central differences, to check hand-written backward passes.

The check reduces any output y to a scalar with a random upstream gradient dy,

    f = sum(y * dy),

so the analytic gradient of f with respect to an array is exactly what ``backward(dy)`` returns, and
a random dy exercises every output element with a different weight (a dy of ones would hide
errors that cancel). The numerical gradient perturbs one element at a time by +-eps:

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)        (error O(eps^2))

Everything runs in float64: in float32 the rounding error of f, about 1e-7 * |f|, divided by 2 eps
would swamp the comparison. For arrays too large to perturb element by element, the directional
check compares one random direction d instead: (f(x + eps d) - f(x - eps d)) / (2 eps) against
sum(grad * d).

Relative error here is max |a - n| / max(max |a|, max |n|): scaled by the gradient's largest entry, so
tiny entries do not blow it up the way an element-wise ratio would.
"""

import numpy as np

from .backend import get_array_module, to_numpy


def relative_error(analytic, numeric):
    """max |a - n| / max(max |a|, max |n|), in float64 on the host; 0 when both are all zero."""
    analytic = to_numpy(analytic).astype(np.float64)
    numeric = to_numpy(numeric).astype(np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient shapes differ: {analytic.shape} vs {numeric.shape}")
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def _objective(forward, dy):
    return float((to_numpy(forward()).astype(np.float64) * dy).sum())


def numerical_gradient(forward, array, dy, eps=1e-6):
    """d sum(forward() * dy) / d array, perturbing ``array`` in place element by element."""
    grad = np.zeros(array.shape, dtype=np.float64)
    if not array.flags.c_contiguous:
        raise ValueError("array must be C-contiguous so it can be perturbed in place")
    flat = array.reshape(-1)  # a view: writing it perturbs the array forward() reads
    for i in range(flat.size):
        original = flat[i].copy()
        flat[i] = original + eps
        plus = _objective(forward, dy)
        flat[i] = original - eps
        minus = _objective(forward, dy)
        flat[i] = original
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def directional_derivative(forward, array, dy, direction, eps=1e-6):
    """(f(x + eps d) - f(x - eps d)) / (2 eps) for f = sum(forward() * dy), perturbing ``array`` in place.

    ``direction`` has ``array``'s shape and lives on its device; ``dy`` is a host array.
    """
    original = array.copy()
    array += eps * direction
    plus = _objective(forward, dy)
    array[...] = original - eps * direction
    minus = _objective(forward, dy)
    array[...] = original
    return (plus - minus) / (2 * eps)


def check_gradients(forward, backward, arrays, seed=0, eps=1e-6, directional=()):
    """Compare analytic gradients with numerical ones; return ``{name: relative error}``.

    forward():     runs the computation, reading the float64 arrays in ``arrays``, returns y.
    backward(dy):  returns ``{name: analytic gradient}`` for the same names, after a forward pass.
    arrays:        ``{name: array}`` the gradients are taken with respect to (perturbed in place).
    directional:   names checked along a random direction instead of element by element.
    """
    rng = np.random.default_rng(seed)
    y = forward()
    dy_host = rng.standard_normal(np.shape(y))
    xp = get_array_module(y)
    analytic = backward(xp.asarray(dy_host, dtype=y.dtype))
    errors = {}
    for name, array in arrays.items():
        if array.dtype != np.float64:
            raise ValueError(f"{name}: gradient checks need float64 arrays, got {array.dtype}")
        if name in directional:
            direction = rng.standard_normal(array.shape)
            # Drawn on the host (the same direction whatever the backend), then moved to the array's
            # device: CuPy refuses to add a NumPy array into a CuPy one.
            on_device = get_array_module(array).asarray(direction)
            numeric = directional_derivative(forward, array, dy_host, on_device, eps)
            projected = float((to_numpy(analytic[name]).astype(np.float64) * direction).sum())
            scale = max(abs(projected), abs(numeric))
            errors[name] = 0.0 if scale == 0 else abs(projected - numeric) / scale
        else:
            numeric = numerical_gradient(forward, array, dy_host, eps)
            errors[name] = relative_error(analytic[name], numeric)
    return errors


def check_layer(layer, *inputs, seed=0, eps=1e-6, directional=()):
    """Gradient check of a layer with respect to its first input and every Parameter, in float64.

    The layer's parameters are cast to float64 in place (use a fresh layer). A layer that draws
    random numbers (``rng``, as Dropout) has its generator rewound before every forward pass, so all
    passes see the same mask. Returns ``{"input": error, parameter name: error, ...}``.
    """
    inputs = list(inputs)
    # A float64 copy on the input's own device (np.array would refuse a CuPy array).
    inputs[0] = get_array_module(inputs[0]).array(inputs[0], dtype=np.float64)
    parameters = dict(layer.parameters())
    for parameter in parameters.values():
        parameter.astype(np.float64)
    rng = getattr(layer, "rng", None)
    rng_state = rng.bit_generator.state if rng is not None else None

    def forward():
        if rng is not None:
            rng.bit_generator.state = rng_state
        return layer.forward(*inputs)

    def backward(dy):
        layer.zero_grad()
        dx = layer.backward(dy)
        grads = {"input": dx}
        grads.update({name: parameter.grad.copy() for name, parameter in parameters.items()})
        return grads

    arrays = {"input": inputs[0]}
    arrays.update({name: parameter.data for name, parameter in parameters.items()})
    return check_gradients(forward, backward, arrays, seed=seed, eps=eps, directional=directional)
