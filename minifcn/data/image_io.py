"""Reading images and label masks from files into NumPy arrays.

``read_image`` turns any picture Pillow can open into (H, W, 3) uint8 RGB; ``read_label`` reads a
mask's raw class indices (H, W) int32 and never converts colours. Both apply the EXIF orientation, so
a photo and its mask line up the way a viewer shows them, refuse images over Pillow's
decompression-bomb limit, and turn every failure into one DataError line naming the file.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError

# Greyscale modes with more than 8 bits per pixel (16-bit PNG opens as "I;16" or "I").
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Modes whose values are class indices as they are.
_INDEX_MODES = ("P", "L", "1") + _WIDE_GREY_MODES


def read_image(path):
    """The picture at ``path`` as (H, W, 3) uint8 RGB.

    Greyscale is repeated on the three channels, 16-bit greyscale is scaled to 8 bits, alpha is dropped
    (the colour under a transparent pixel is kept, as ``Image.convert("RGB")`` does), palette images are
    expanded to their colours. Raises DataError for a missing, corrupt or oversized file.
    """
    with _OpenImage(path, "image") as image:
        try:
            return _to_rgb(image)
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: cannot convert a {image.mode!r} image to RGB ({error})") from None


def read_label(path):
    """The class indices stored in the mask at ``path`` as (H, W) int32.

    A palette PNG (VOC) gives its palette indices, a greyscale PNG (CamVid) its grey values, 16-bit
    greyscale its raw values. An RGB mask is accepted only when it is grey (R = G = B); a colour-coded
    mask raises DataError, because mapping colours back to classes needs a palette this function
    does not have.
    """
    with _OpenImage(path, "mask") as image:
        mode = image.mode
        if mode in _INDEX_MODES:
            return np.array(image, dtype=np.int32)
        if mode in ("LA", "PA"):
            return np.array(image.getchannel(0), dtype=np.int32)
        if mode in ("RGB", "RGBA", "RGBX"):
            rgb = np.asarray(image)[..., :3]
            if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
                return rgb[..., 0].astype(np.int32)
            raise DataError(
                f"{path}: mask is a colour {mode} image; a mask must hold class indices "
                "(a palette or greyscale PNG)"
            )
        raise DataError(f"{path}: mask has image mode {mode!r}; expected a palette or greyscale PNG")


class _OpenImage:
    """Context manager: open, size-check, decode and EXIF-orient a file, raising DataError on failure."""

    def __init__(self, path, what):
        self.path = Path(path)
        self.what = what
        self.image = None

    def __enter__(self):
        path, what = self.path, self.what
        if not path.is_file():
            raise DataError(f"{path}: {what} file not found" if not path.exists() else f"{path}: not a file")
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as error:
            raise DataError(f"{path}: refused as a possible decompression bomb: {_reason(error)}") from None
        except Exception as error:
            if isinstance(error, MemoryError):
                raise
            raise DataError(f"{path}: cannot read {what}: {_reason(error)}") from None
        self.image = image
        # Pillow only warns between its limit and twice its limit; a dataset has no reason to hold
        # such a file, and decoding one could exhaust memory, so refuse at the limit itself.
        limit = Image.MAX_IMAGE_PIXELS
        width, height = image.size
        if limit is not None and width * height > limit:
            image.close()
            raise DataError(
                f"{path}: {width}x{height} pixels exceeds Pillow's decompression-bomb limit of {int(limit)} "
                "pixels (PIL.Image.MAX_IMAGE_PIXELS); raise that limit if the image is genuine"
            )
        try:
            image.load()
        except Exception as error:
            image.close()
            if isinstance(error, MemoryError):
                raise
            raise DataError(f"{path}: cannot decode {what}: {_reason(error)}") from None
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # noqa: BLE001
            # Cameras and editors write malformed EXIF blocks often; the pixels are still good, and
            # an unreadable orientation tag is best treated as absent, as image viewers do.
            pass
        return image

    def __exit__(self, *exc_info):
        self.image.close()
        return False


def _reason(error):
    """One line from an exception, since Pillow's messages sometimes span several."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _to_rgb(image):
    """(H, W, 3) uint8 from a loaded Pillow image of any mode."""
    mode = image.mode
    if mode == "RGB":
        return np.array(image, dtype=np.uint8)
    if mode in _WIDE_GREY_MODES or mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        if mode != "F":
            # 65535 / 255 = 257 maps the 16-bit range exactly onto the 8-bit one.
            grey = grey / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.array(image.convert("RGB"), dtype=np.uint8)
