"""User-facing error types.

Everything a person can get wrong (a path, a file, an option) raises a subclass of
:class:`CaptionerError`. The command-line front ends turn these into one line on standard
error and exit code 2; anything else is a bug and keeps its traceback (exit code 3).
"""


class CaptionerError(Exception):
    """Base class of the errors caused by user input rather than by a bug."""


class ImageError(CaptionerError):
    """An image file that cannot be read: missing, truncated, not an image, too large."""


class UnsupportedImage(ImageError):
    """Bytes that are not an image in a format Pillow reads (a server answers 415)."""


class DataError(CaptionerError):
    """An annotation or vocabulary file that is missing, malformed or inconsistent."""


class ModelError(CaptionerError):
    """A model directory that is missing, incomplete, or does not match its vocabulary."""


class OutputError(CaptionerError):
    """A file or folder that cannot be written: no space left, no permission, a read-only
    file system. Nothing half-written is left behind (``captioner.io``)."""


class ConfigError(CaptionerError, ValueError):
    """A configuration with unknown keys or values out of range."""


class ServerError(CaptionerError):
    """A server that cannot start: its address is taken, or not one of this machine's."""
