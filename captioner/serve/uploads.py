"""What a caption request carries: its body (read within a size limit, in memory), its
images (multipart parts, or the whole body), and its options (query parameters or form
fields, named as ``SearchConfig``'s fields), each refused with the status that says why
and one line that says what.

Nothing of an upload is written to disk: the body is read into memory up to
``max_body_mb`` and the multipart parser's parts stay in memory (their spool is larger
than any body let in).
"""

import asyncio
import dataclasses
import io
import math

import numpy as np
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from captioner.config import SearchConfig, field_type
from captioner.data.images import decode_image, resize_image
from captioner.errors import ConfigError, ImageError, UnsupportedImage

SHOWN = 640  # the longest side of an image a heat-map figure is drawn over
FLAGS = ("maps", "heatmaps")  # what to add to each caption: maps as numbers, PNG panels
SEARCH_OPTIONS = tuple(field.name for field in dataclasses.fields(SearchConfig))
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class Refused(Exception):
    """A request answered with an error: its HTTP ``status``, one line, and headers."""

    def __init__(self, status, message, headers=None, results=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.headers, self.results = headers or {}, results


@dataclasses.dataclass
class Upload:
    """One image of a request: the name its client gave it (or None) and its bytes."""
    name: object
    data: bytes


async def read_body(request, limit):
    """The request's body, at most ``limit`` bytes: 413 past it (said by Content-Length
    before anything is read, or counted as it arrives)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Refused(400, f"Content-Length is not a number: {declared[:40]!r}") from None
        if size > limit:
            raise Refused(413, f"the body is {size:,} bytes; the limit is {limit:,} "
                               "(--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is over the limit of {limit:,} bytes (--max-body-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_uploads(request, body, limit, max_images):
    """(uploads, form fields) of a request whose ``body`` was read: multipart parts with a
    file name are images, the other parts options; any other body is one image."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async def stream():
            yield body
            yield b""
        parser = MultiPartParser(request.headers, stream(), max_files=max_images + 1,
                                 max_fields=64, max_part_size=64 * 1024)
        parser.spool_max_size = limit + 1  # parts stay in memory: no body is larger
        try:
            form = await parser.parse()
        except MultiPartException as error:
            if "Too many files" in str(error):
                raise Refused(413, f"more than {max_images} images in one request "
                                   "(--max-images)") from None
            raise Refused(400, f"malformed multipart body: {error}") from None
        uploads, fields = [], {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                value.file.seek(0)
                uploads.append(Upload(value.filename or name, value.file.read()))
                value.file.close()
            else:
                fields.setdefault(name, value)
        if not uploads:
            raise Refused(422, "no image in the request: send multipart parts with a file "
                               "name, or the image as the whole body")
        return uploads, fields
    if kind in ("application/x-www-form-urlencoded", "application/json", "text/plain"):
        raise Refused(415, f"a body of {kind} is not an image: send multipart/form-data "
                           "parts or an image body (image/*)")
    if not body:
        raise Refused(422, "no image in the request (the body is empty)")
    return [Upload(None, body)], {}


def read_options(query, fields, defaults, max_beam, max_length, vocabulary):
    """(the request's SearchConfig, {"maps": bool, "heatmaps": bool}) from ``query`` and
    form ``fields`` (the same option in both is refused): 422 naming the option for one
    that is unknown, of the wrong type, or out of range."""
    given = {}
    for source in (query, fields):
        for name, value in source.items():
            if name in given:
                raise Refused(422, f"option {name} is given twice")
            given[name] = value
    unknown = sorted(set(given) - set(SEARCH_OPTIONS) - set(FLAGS))
    if unknown:
        raise Refused(422, f"unknown option {unknown[0]!r}; the options are "
                           f"{', '.join(SEARCH_OPTIONS + FLAGS)}")
    flags = {name: _flag(name, given.get(name, "")) for name in FLAGS}
    values = {}
    for field in dataclasses.fields(SearchConfig):
        if field.name in given:
            values[field.name] = _typed(field.name, field_type(field), given[field.name])
    try:
        search = dataclasses.replace(defaults, **values)
    except ConfigError as error:
        raise Refused(422, f"option {str(error)}") from None
    for name in ("beam", "samples"):  # hypotheses kept per image
        if getattr(search, name) > max_beam:
            raise Refused(422, f"option {name} must be at most {max_beam} on this server "
                               f"(--max-beam). Received: {name}={getattr(search, name)}")
    from captioner.search import banned_ids
    try:
        banned_ids(search, vocabulary)
    except ConfigError as error:
        raise Refused(422, f"option {error}") from None
    if search.max_length is not None and search.max_length > max_length:
        raise Refused(422, f"option max_length must be at most the model's {max_length}. "
                           f"Received: max_length={search.max_length}")
    return search, flags


def _typed(name, kind, text):
    if kind is tuple:  # words, comma-separated
        return tuple(word.strip() for word in text.split(",") if word.strip())
    try:
        value = kind(text)
    except ValueError:
        raise Refused(422, f"option {name} must be {kind.__name__}. Received: "
                           f"{name}={text[:40]!r}") from None
    if kind is float and not math.isfinite(value):
        raise Refused(422, f"option {name} must be a finite number. Received: {name}={text!r}")
    return value


def _flag(name, text):
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise Refused(422, f"option {name} must be true or false. Received: {name}={text[:40]!r}")


def decode_upload(upload, image_size, max_pixels, keep_image):
    """An upload -> (name, the image to draw maps over, its model input uint8 (S, S, 3)):
    Pillow's guards as for files (``captioner.data.images.decode_image``). The image
    kept for drawing (``keep_image``) is at most ``SHOWN`` pixels on a side, so that a
    request's heat maps hold no full-size photographs; otherwise the model input stands
    in for it. Raises UnsupportedImage (not an image) or ImageError (too large,
    truncated, empty)."""
    name = upload.name if upload.name is not None else "the request body"
    image = decode_image(io.BytesIO(upload.data), name, max_pixels, reduce_to=image_size)
    model_input = resize_image(image, image_size)
    if not keep_image:
        return upload.name, model_input, model_input
    if max(image.shape[:2]) > SHOWN:
        picture = Image.fromarray(image)
        picture.thumbnail((SHOWN, SHOWN), Image.BILINEAR)
        image = np.asarray(picture)
    return upload.name, image, model_input


async def decode_uploads(uploads, pool, image_size, max_pixels, keep_images):
    """Every upload decoded on the thread ``pool``: per upload its item, or the
    ImageError that says why it could not be read."""
    loop = asyncio.get_running_loop()

    def one(upload):
        try:
            return decode_upload(upload, image_size, max_pixels, keep_images)
        except ImageError as error:
            return error
    return await asyncio.gather(*(loop.run_in_executor(pool, one, upload)
                                  for upload in uploads))


def status_of(error):
    """The status of an image that cannot be read: 415 not an image, else 422."""
    return 415 if isinstance(error, UnsupportedImage) else 422
