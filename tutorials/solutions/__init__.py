"""Solutions to the exercises of the tutorial notebooks, one module per notebook.

The module names start with the notebook's number (``02_convolution``), which is not a Python
identifier, so a notebook loads its module with ``importlib.import_module("solutions.02_convolution")``.
"""
