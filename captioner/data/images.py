"""Decode any image file safely into RGB, and preprocess it for a backbone.

:func:`load_image` is the only place the project opens an image: it applies the EXIF
orientation, converts every Pillow mode to 8-bit RGB (transparent pixels composited on
white, 16-bit and float images rescaled), refuses images larger than a pixel budget before
decoding them (decompression bombs), and names the file in every error.

:func:`load_resized` is the one way an image becomes model input: training (the tf.data
and the Python pipelines alike), the feature cache and inference all call it, so the model
never sees differently prepared pixels at test time. It gives uint8 (S, S, 3); a JPEG at
least twice as large as S on both sides is decoded at 1/2, 1/4 or 1/8 scale by libjpeg
(``Image.draft``), much faster, and then resized. :func:`scale_pixels` maps the pixels to
what a backbone expects, on NumPy arrays or on any backend's tensors: the model applies it
itself to uint8 images (``captioner.models.encoder``), so images stay uint8, a quarter of
the bytes, until they reach it.
"""

import dataclasses
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from captioner.errors import ImageError, UnsupportedImage

MAX_PIXELS = 80_000_000  # about 9000 x 9000; larger files are refused before decoding
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white


@dataclasses.dataclass
class Unreadable:
    """An input that could not be read (``captioner.inference.caption_files`` and
    ``classify_files`` with ``unreadable="report"``): its path and why, one line for the
    user."""
    path: str
    reason: str


def _to_rgb(image):
    """Converts a loaded Pillow image of any mode to an (H, W, 3) uint8 array."""
    mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode.startswith("I") or mode == "F":
        # 16-bit, 32-bit integer and float greyscale: rescale to 0..255 by the format's range.
        values = np.asarray(image, dtype=np.float64)
        if mode == "F" and values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        elif mode != "F" and values.size and values.max() > 255:
            values = values / 257.0  # 65535 -> 255
        grey = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode != "RGB":
        image = image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(image)


def load_image(path, max_pixels=MAX_PIXELS, reduce_to=None):
    """Reads an image file into an (H, W, 3) uint8 RGB array, upright per its EXIF tag.

    ``reduce_to``: a JPEG at least twice this size on both sides is decoded at the smallest
    of 1/2, 1/4 or 1/8 scale that keeps both sides at least ``reduce_to`` (other formats
    decode at full size).

    Raises:
        ImageError: naming the file, if it is missing, not an image, truncated, empty, or
            has more than ``max_pixels`` pixels (``UnsupportedImage`` where it is not an
            image Pillow can read).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"Image not found: {path}")
    if os.path.isdir(path):
        raise ImageError(f"Expected an image file, got a folder: {path}")
    kind = _special_kind(path)
    if kind:
        raise ImageError(f"Not a regular file ({kind}): {path}")
    return decode_image(path, path, max_pixels, reduce_to)


def decode_image(source, name, max_pixels=MAX_PIXELS, reduce_to=None):
    """Decodes ``source`` (a path or a binary file object, such as ``io.BytesIO`` of an
    upload, which never touches the disk) as :func:`load_image` does; ``name`` is what its
    errors call it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on damaged tags
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"Image too large: {name} is {width}x{height} "
                        f"({width * height:,} pixels; the limit is {max_pixels:,})")
                if width == 0 or height == 0:
                    raise ImageError(f"Image is empty: {name} ({width}x{height})")
                if reduce_to:
                    image.draft(None, (reduce_to, reduce_to))  # a no-op but for JPEG
                image.load()
                image = ImageOps.exif_transpose(image)
                return np.ascontiguousarray(_to_rgb(image))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedImage(f"Not an image (or a format Pillow cannot read): {name}") \
            from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"Image too large: {name} exceeds the decompression-bomb limit") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"Cannot decode image {name}: {error}") from None
    except Exception as error:  # a decoder tripping over a malformed header (fuzzing found
        # TypeError from a TIFF whose strip offsets are text): still the file's fault
        raise ImageError(f"Cannot decode image {name}: {type(error).__name__}: "
                         f"{error}") from None


def _special_kind(path):
    """What ``path`` is where it is not a regular file ("a FIFO", "a socket", "a
    device"), which opening could block on or read forever; None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # opening it says why
    if stat.S_ISREG(mode):
        return None
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


UNREADABLE_POLICIES = ("raise", "report")


def read_batch(items, read, unreadable="raise"):
    """The one policy for a batch of inputs that may not all be readable: ``[read(item) or
    an Unreadable per item]``, in order. ``unreadable="raise"`` raises the first
    ImageError instead; ``"report"`` puts an :class:`Unreadable` (the item, why) in its
    place, so that every readable input is still answered."""
    if unreadable not in UNREADABLE_POLICIES:
        raise ValueError(f"unreadable must be 'raise' or 'report'. Received: {unreadable!r}")
    results = []
    for item in items:
        try:
            results.append(read(item))
        except ImageError as error:
            if unreadable == "raise":
                raise
            results.append(Unreadable(os.fspath(item) if isinstance(item, (str, os.PathLike))
                                      else str(item), str(error)))
    return results


def list_images(folder):
    """The image files directly inside ``folder``, sorted by name."""
    names = sorted(name for name in os.listdir(folder)
                   if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    return [os.path.join(folder, name) for name in names]


def scale_pixels(pixels, backbone):
    """Maps float pixels in 0..255 to what ``backbone`` was trained on (NumPy arrays or
    tensors of any backend; keras.applications' ``preprocess_input`` handles both)."""
    if backbone == "small":
        return pixels / 127.5 - 1.0
    from keras import applications
    modules = {"mobilenet_v2": applications.mobilenet_v2, "resnet50": applications.resnet50,
               "inception_v3": applications.inception_v3,
               "efficientnet_b0": applications.efficientnet}
    return modules[backbone].preprocess_input(pixels)


def resize_image(rgb, image_size):
    """An (H, W, 3) uint8 image squashed to (image_size, image_size, 3) uint8 (bilinear,
    antialiased). The whole image is kept (no crop), so the attention grid covers all of
    it and maps back onto the original for drawing."""
    if rgb.shape[:2] == (image_size, image_size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((image_size, image_size), Image.BILINEAR))


def load_resized(path, image_size, max_pixels=MAX_PIXELS):
    """The model input of an image file: uint8 (image_size, image_size, 3) (see the module
    docstring). Raises ImageError like :func:`load_image`."""
    return resize_image(load_image(path, max_pixels, reduce_to=image_size), image_size)


def load_with_input(path, image_size):
    """(the image at full size, its model input) for a file: :func:`load_image` and
    :func:`load_resized`, with one decoding unless the file is a JPEG large enough for a
    reduced one."""
    full = load_image(path)
    if min(full.shape[:2]) >= 2 * image_size and _is_jpeg(path):
        return full, load_resized(path, image_size)
    return full, resize_image(full, image_size)


def _is_jpeg(path):
    with open(path, "rb") as handle:
        return handle.read(3) == b"\xff\xd8\xff"
