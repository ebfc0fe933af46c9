"""Record the names and keyword arguments of the real CuPy into ``cupy_api.json``.

The stand-in offers only what the real ``cupy``/``cupyx`` have, so code that runs on the stand-in
cannot call a NumPy-only function or keyword and then fail on a GPU. To re-record (for a new CuPy
release; the wheel installs and imports without a GPU, it needs no CUDA device for this):

    pip download --no-deps cupy-cuda12x -d /tmp/cupy-wheel          # about 140 MB
    pip install --no-deps --target /tmp/cupy-api /tmp/cupy-wheel/*.whl fastrlock cuda-pathfinder
    PYTHONPATH=/tmp/cupy-api python tests/cupy_standin/record_api.py

and commit the rewritten ``tests/cupy_standin/cupy_api.json``.
"""

import importlib
import inspect
import json
import re
from pathlib import Path

MODULES = ["cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.random", "cupy.linalg", "cupyx"]
OUTPUT = Path(__file__).with_name("cupy_api.json")


def keywords(obj):
    """The keyword names ``obj`` accepts, plus "**" when it takes any; None where unknown."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        names = []
        for parameter in signature.parameters.values():
            if parameter.kind is parameter.VAR_KEYWORD:
                names.append("**")
            elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                names.append(parameter.name)
        return names
    # Cython functions without a signature: read the first line of the docstring, "name(a, b=1)".
    first_line = (obj.__doc__ or "").strip().splitlines()[:1]
    match = re.match(r"[\w.]+\((.*)\)", first_line[0]) if first_line else None
    if match is None:
        return None
    names = []
    for part in match.group(1).split(","):
        part = part.strip().replace("\\", "")
        if part.startswith("**"):
            names.append("**")
        elif part and part not in ("/", "*", "self") and not part.startswith("*"):
            names.append(part.split("=")[0].strip().split()[-1])
    return names


def kind(obj):
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "callable"
    return "value"


def describe(obj):
    entry = {"kind": kind(obj)}
    if entry["kind"] == "callable":
        entry["keywords"] = keywords(obj)
    elif entry["kind"] == "class":
        entry["keywords"] = keywords(obj)
    return entry


def main():
    api = {}
    for name in MODULES:
        module = importlib.import_module(name)
        api[name] = {attr: describe(getattr(module, attr)) for attr in sorted(dir(module))
                     if not attr.startswith("__") and hasattr(module, attr)}
    import cupy

    api["cupy.ndarray"] = {attr: describe(getattr(cupy.ndarray, attr)) for attr in sorted(dir(cupy.ndarray))
                           if not attr.startswith("__") or attr in ("__dlpack__", "__cuda_array_interface__")}
    generator = cupy.random.Generator
    api["cupy.random.Generator"] = {attr: describe(getattr(generator, attr)) for attr in sorted(dir(generator))
                                    if not attr.startswith("_")}
    api["cupy.ElementwiseKernel"] = {"__init__": {"kind": "callable",
                                                  "keywords": keywords(cupy.ElementwiseKernel.__init__)},
                                     "__call__": {"kind": "callable",
                                                  "keywords": keywords(cupy.ElementwiseKernel.__call__)}}
    record = {"recorded_from": f"cupy {cupy.__version__}", "api": api}
    OUTPUT.write_text(json.dumps(record, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUTPUT} from cupy {cupy.__version__}: "
          + ", ".join(f"{name} {len(names)}" for name, names in api.items()))


if __name__ == "__main__":
    main()
