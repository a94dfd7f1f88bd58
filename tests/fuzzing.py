"""Broken image files for property-based tests of ``load_image`` (hypothesis strategies),
shared by ``tests/data/test_image_fuzzing.py`` and ``tests/harness/fuzz_images.py``.

Each starts from a small valid file of one format (PNG, JPEG with an EXIF orientation,
GIF, BMP, TIFF, WebP, and 16-bit, RGBA, palette and CMYK variants) and breaks it: random
bytes, a truncation, bytes overwritten in the header, a size field set to a large
number, bytes inserted, or several of these at once.
"""

import io
import os
import signal
import tempfile

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from captioner.data.images import MAX_PIXELS, load_image
from captioner.errors import ImageError

HEADER = 96  # the bytes where formats keep their sizes, modes and offsets


def _encode(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def seed_files():
    """{name: bytes} of small valid files, one per format and mode."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((13, 11, 3)) * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: load_image turns it upright
    grey16 = Image.fromarray((rng.random((9, 7)) * 65535).astype(np.uint16))
    return {
        "png": _encode(rgb, "PNG"),
        "png_rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "png_16bit": _encode(grey16, "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=80, exif=exif),
        "jpeg_cmyk": _encode(rgb.convert("CMYK"), "JPEG"),
        "gif": _encode(rgb.convert("P"), "GIF"),
        "bmp": _encode(rgb, "BMP"),
        "tiff": _encode(rgb, "TIFF"),
        "tiff_16bit": _encode(grey16, "TIFF"),
        "webp": _encode(rgb, "WEBP", quality=70),
        "webp_lossless": _encode(rgb.convert("RGBA"), "WEBP", lossless=True),
    }


SEEDS = seed_files()


def _truncate(data):
    return st.integers(0, len(data)).map(lambda end: data[:end])


def _overwrite(data):
    if not data:
        return st.just(data)
    edits = st.lists(st.tuples(st.integers(0, min(HEADER, len(data)) - 1), st.integers(0, 255)),
                     min_size=1, max_size=8)

    def apply(changes):
        out = bytearray(data)
        for offset, value in changes:
            out[offset] = value
        return bytes(out)
    return edits.map(apply)


def _large_size(data):
    """A 2- or 4-byte field of the header set to a large value (widths, heights, counts,
    offsets), either byte order."""
    if len(data) < 4:
        return st.just(data)
    fields = st.tuples(st.integers(0, min(HEADER, len(data)) - 4), st.sampled_from((2, 4)),
                       st.sampled_from(("little", "big")),
                       st.sampled_from((0, 1, 255, 4096, 30000, 65535, 2 ** 31 - 1, 2 ** 32 - 1)))

    def apply(field):
        offset, width, order, value = field
        value = min(value, 2 ** (8 * width) - 1)
        return data[:offset] + value.to_bytes(width, order) + data[offset + width:]
    return fields.map(apply)


def _insert(data):
    return st.tuples(st.integers(0, len(data)), st.binary(min_size=1, max_size=64)).map(
        lambda chosen: data[:chosen[0]] + chosen[1] + data[chosen[0]:])


def broken(name):
    """A strategy of broken files made from the seed ``name``."""
    data = SEEDS[name]
    once = st.one_of(_truncate(data), _overwrite(data), _large_size(data), _insert(data))
    twice = once.flatmap(lambda first: st.one_of(_truncate(first), _overwrite(first)))
    return st.one_of(st.binary(max_size=512), once, twice)


class Hang(Exception):
    """load_image ran past its time limit."""


def _alarm(signum, frame):
    raise Hang()


def outcome(data, folder, seconds=5.0):
    """Writes ``data`` to a file in ``folder`` and reads it with ``load_image``: "decoded" (an
    RGB array of the promised shape), "refused" (ImageError). Raises AssertionError for a
    wrong array, ``Hang`` past ``seconds``, and lets any other exception through."""
    handle, path = tempfile.mkstemp(dir=folder, suffix=".img")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        array = load_image(path)
    except ImageError:
        return "refused"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.remove(path)
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8, type(array)
    assert array.ndim == 3 and array.shape[2] == 3, array.shape
    assert array.shape[0] >= 1 and array.shape[1] >= 1, array.shape
    assert array.shape[0] * array.shape[1] <= MAX_PIXELS, array.shape
    return "decoded"
