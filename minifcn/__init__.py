"""minifcn: FCN-8s semantic segmentation from scratch on NumPy and CuPy."""

__version__ = "0.1.0"
