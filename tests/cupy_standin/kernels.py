"""The stand-in's ``ElementwiseKernel`` and ``fuse``: custom kernels run as their NumPy twins.

An ``ElementwiseKernel``'s CUDA source cannot run here, so the stand-in reads the straight-line
arithmetic kernels minifcn writes (statements ``name = expr;``, ``name += expr;``, ``T name = expr;``
over the parameters, with sqrt/exp/log/fabs/min/max) and evaluates each statement on whole NumPy arrays,
in the parameters' types: the same arithmetic per element, one counted launch. Anything else (branches,
loops, indexing) is refused, so a kernel the stand-in cannot check cannot pass silently.
``fuse`` runs the Python function as written, counting one launch for all its operations.
"""

import functools
import re

import numpy as np

from .core import State, check_keywords, count_launch, ndarray, wrap

_STATEMENT = re.compile(r"^(?:(?:const\s+)?\w+\s+)?([A-Za-z_]\w*)\s*([+\-*/]?=)\s*(.+)$")
_FUNCTIONS = {"sqrt": np.sqrt, "sqrtf": np.sqrt, "exp": np.exp, "expf": np.exp, "log": np.log, "logf": np.log,
              "fabs": np.abs, "abs": np.abs, "min": np.minimum, "max": np.maximum, "fminf": np.minimum,
              "fmaxf": np.maximum}
_TYPES = {"float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
          "int32": np.int32, "int": np.int32, "int64": np.int64, "bool": np.bool_, "uint32": np.uint32}


def _parameters(text):
    """[(type name, variable name)] of a kernel's parameter list ("T x, float32 lr")."""
    parameters = []
    for part in filter(None, (item.strip() for item in text.split(","))):
        words = part.split()
        if len(words) != 2:
            raise NotImplementedError(f"the stand-in runs only plain parameters, not {part!r}")
        parameters.append((words[0], words[1]))
    return parameters


class ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, **kwargs):
        check_keywords("cupy", "ElementwiseKernel", kwargs)
        if preamble:
            raise NotImplementedError("the stand-in runs no kernel preamble")
        self.in_params = _parameters(in_params)
        self.out_params = _parameters(out_params)
        self.name = name
        self.no_return, self.return_tuple = no_return, return_tuple
        self.statements = []
        for statement in filter(None, (item.strip() for item in operation.split(";"))):
            match = _STATEMENT.match(statement)
            if match is None or re.search(r"[?\[\]{}]|\bif\b|\bfor\b", statement):
                raise NotImplementedError(f"the stand-in runs only straight-line arithmetic, not {statement!r}")
            target, operator, expression = match.groups()
            expression = re.sub(r"(\d(?:\.\d*)?(?:e[+-]?\d+)?)f\b", r"\1", expression)
            self.statements.append((target, operator, compile(expression, name, "eval")))

    def __call__(self, *args, size=None, block_size=None):
        parameters = self.in_params + self.out_params
        if len(args) not in (len(self.in_params), len(parameters)):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        if any(isinstance(arg, np.ndarray) for arg in args):
            raise TypeError(f"Unsupported type {np.ndarray}")
        arrays = [arg for arg in args if isinstance(arg, ndarray)]
        type_variables = {}
        for (type_name, _), arg in zip(parameters, args):
            if isinstance(arg, ndarray) and type_name not in _TYPES:
                type_variables.setdefault(type_name, arg.dtype.type)
        count_launch(arrays)
        shape = np.broadcast_shapes(*(arg.shape for arg in arrays))
        environment = dict(_FUNCTIONS)
        for (type_name, variable), arg in zip(parameters, args):
            dtype = _TYPES.get(type_name) or type_variables.get(type_name)
            if dtype is None:
                raise TypeError(f"cannot infer the type {type_name!r} of {variable!r}")
            environment[variable] = (arg._array.astype(dtype, copy=False) if isinstance(arg, ndarray)
                                     else dtype(arg))
        outputs = list(args[len(self.in_params):])
        for (type_name, variable) in self.out_params[len(outputs):]:
            dtype = _TYPES.get(type_name) or type_variables[type_name]
            outputs.append(wrap(np.zeros(shape, dtype)))
            environment[variable] = outputs[-1]._array
        State.fused_depth += 1
        try:
            for target, operator, expression in self.statements:
                value = eval(expression, {"__builtins__": {}}, environment)
                if operator != "=":
                    value = {"+=": np.add, "-=": np.subtract, "*=": np.multiply, "/=": np.divide}[operator](
                        environment[target], value)
                dtype = np.result_type(environment[target]) if target in environment else None
                environment[target] = value.astype(dtype, copy=False) if dtype is not None and hasattr(value, "astype") else value
        finally:
            State.fused_depth -= 1
        for (_, variable), output in zip(self.out_params, outputs):
            output._array[...] = environment[variable]
        if self.no_return:
            return None
        if len(outputs) == 1 and not self.return_tuple:
            return outputs[0]
        return tuple(outputs)


def fuse(*args, **kwargs):
    """``cupy.fuse``: the function runs as written, as one counted launch."""
    def decorate(function):
        @functools.wraps(function)
        def fused(*call_args):
            count_launch([arg for arg in call_args if isinstance(arg, ndarray)])
            State.fused_depth += 1
            try:
                return function(*call_args)
            finally:
                State.fused_depth -= 1
        return fused

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate
