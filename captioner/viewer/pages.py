"""Writing the viewer's folder (see ``captioner.viewer``): items in, pages out.

Every writer's item is a dict the page's script draws (``viewer.js`` documents the
fields); the helpers here turn the project's results into them: ``caption_item`` (a
``Caption``: words, probabilities, maps), ``glimpse_item`` (a RAM's answer),
``encode_map`` (an attention map as base64 uint8).
"""

import base64
import contextlib
import io as bytes_io
import json
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

from captioner.errors import OutputError
from captioner.folders import KINDS, claim
from captioner.io import refused_writes, replace_folder

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MARKER = KINDS["viewer"].mark  # a folder holding it is a viewer, which a new one replaces
THUMBNAIL = 384               # the longest side of the images the page shows
PAGE_SIZE = 50                # items per data file


def encode_map(alpha_grid):
    """(H, W) attention weights -> {"map": base64 of uint8 H*W scaled to the peak, "peak"}."""
    grid = np.asarray(alpha_grid, np.float64)
    peak = float(grid.max()) if grid.size else 0.0
    scaled = np.zeros(grid.shape, np.uint8) if peak <= 0 else \
        np.round(255.0 * np.clip(grid, 0, None) / peak).astype(np.uint8)
    return {"map": base64.b64encode(scaled.tobytes()).decode("ascii"), "peak": round(peak, 5)}


def caption_item(caption, absent=(), false=None):
    """A ``captioner.results.Caption`` -> the page's form: {"caption", "score", "log_prob",
    "words": [{"w", "p", "map", "peak", "cell", "absent", "false", "heads"}]}; ``absent``:
    indices of words that name an object the image lacks, or {index: the kind of error}
    (``captioner.metrics.grounding.absent_words``); ``false``: {index: kind} of the words
    of false statements (``captioner.metrics.statements.false_words``); "heads" (a
    Transformer's, where the caption has them): per layer, per head {"map", "peak"}."""
    words = []
    for index, (word, probability, alphas) in enumerate(zip(
            caption.words, caption.probabilities, caption.alphas)):
        entry = {"w": word, "p": round(float(probability), 4), **encode_map(alphas)}
        if caption.cells is not None:
            entry["cell"] = int(caption.cells[index])
        if index in absent:  # the kind of error where known (a dict), else true
            entry["absent"] = absent[index] if isinstance(absent, dict) else True
        if false and index in false:
            entry["false"] = false[index]
        if caption.heads is not None:
            entry["heads"] = [[encode_map(grid) for grid in layer]
                              for layer in caption.heads[index]]
        words.append(entry)
    return {"caption": caption.caption, "score": round(float(caption.score), 4),
            "log_prob": round(float(caption.log_probability), 4), "words": words}


def png_data_url(array):
    """A (h, w) or (h, w, 3) array in [0, 1] -> a PNG data URL."""
    pixels = np.round(255 * np.clip(np.asarray(array, np.float64), 0, 1)).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = bytes_io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def glimpse_item(answer, height, width, patch, scales):
    """A RAM's answer (``captioner.tasks.Classification``) -> {"label", "probability",
    "glimpses": [{"x", "y", "squares": [[x, y, w, h]] per scale, "patches": [data URLs]}]}
    in the pixels of the model's input (``height`` x ``width``)."""
    from captioner.render import glimpse_squares
    glimpses = []
    for location, (row, column), patches in zip(answer.locations, answer.glimpses,
                                                answer.patches):
        squares = [[left, top, side, side] for top, left, side in
                   glimpse_squares(location, height, width, patch, scales)]
        glimpses.append({"x": round(column, 2), "y": round(row, 2),
                         "squares": [[round(float(v), 2) for v in square] for square in squares],
                         "patches": [png_data_url(scale) for scale in patches]})
    return {"label": answer.label, "probability": round(float(answer.probability), 4),
            "glimpses": glimpses}


class ViewerWriter:
    """Writes a viewer folder; ``add`` each item, then ``close`` (or use it as a context
    manager): the folder appears whole at ``folder`` when it closes.

    Args:
        folder: the output folder (``captioner.folders.claim``): new, empty, or a viewer
            written before, whose own entries are replaced (the other files there are
            kept); a folder holding anything else is refused unless ``overwrite``.
        kind: "captions", "report" (a scored split) or "glimpses" (a RAM).
        title: the page's heading.
        grid: (H, W) of the attention maps (captions and report).
        summary: [[name, value, note]] shown above the items (report).
        page_size: items per data file.
    """

    def __init__(self, folder, kind, title, grid=None, summary=None, page_size=PAGE_SIZE,
                 overwrite=False):
        self.folder = claim(folder, "viewer", "--html", overwrite)
        parent = os.path.dirname(self.folder)
        with refused_writes(self.folder):
            os.makedirs(parent, exist_ok=True)
            self.temporary = tempfile.mkdtemp(prefix="." + os.path.basename(self.folder)
                                              + ".partial-", dir=parent)
        with self._writing():
            os.makedirs(os.path.join(self.temporary, "data"))
            os.makedirs(os.path.join(self.temporary, "images"))
        self.manifest = {"kind": kind, "title": title, "grid": list(grid) if grid else None,
                         "summary": summary or [], "page_size": page_size, "pages": 0,
                         "items": []}
        self.page_size, self.pending = page_size, []

    def add(self, image, item, index_fields=None):
        """Adds one item: ``image`` (H, W, 3) uint8 RGB (or in [0, 1]), ``item`` (what the
        page draws), ``index_fields`` (what sorting and filtering need before its page is
        loaded: "cider", "absent" ...)."""
        number = len(self.manifest["items"])
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8:
            pixels = np.round(255 * np.clip(pixels, 0, 1)).astype(np.uint8)
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        picture = Image.fromarray(pixels).convert("RGB")
        picture.thumbnail((THUMBNAIL, THUMBNAIL), Image.BICUBIC)
        name = f"images/{number:06d}.jpg"
        with self._writing():
            picture.save(os.path.join(self.temporary, name), format="JPEG", quality=88)
        entry = {"i": number, "page": number // self.page_size,
                 "name": item.get("name", str(number)), **(index_fields or {})}
        self.manifest["items"].append(entry)
        self.pending.append({**item, "i": number, "image": name,
                             "width": picture.width, "height": picture.height})
        if len(self.pending) == self.page_size:
            with self._writing():
                self._flush()

    @contextlib.contextmanager
    def _writing(self):
        """A refused write (no space, no permission) is one line for the user, and the
        unfinished folder is removed."""
        try:
            with refused_writes(self.folder):
                yield
        except OutputError:
            self.abandon()
            raise

    def unreadable(self, name, reason):
        """Lists an input that could not be read above the items."""
        self.manifest["summary"].append(["not read", name, reason])

    def _flush(self):
        if not self.pending:
            return
        page = self.manifest["pages"]
        self._script(f"data/page_{page:04d}.js", "page", page, self.pending)
        self.manifest["pages"] += 1
        self.pending = []

    def _script(self, name, call, *arguments):
        """data/NAME.js: one call of the page's loader with JSON arguments."""
        text = f"captionerViewer.{call}(" + ",".join(
            json.dumps(a, separators=(",", ":")) for a in arguments) + ");\n"
        with open(os.path.join(self.temporary, name), "w", encoding="utf-8") as handle:
            handle.write(text)

    def close(self):
        """Writes the manifest and the page, and moves the folder into place."""
        with self._writing():
            return self._close()

    def _close(self):
        self._flush()
        self._script("data/manifest.js", "manifest", self.manifest)
        with open(os.path.join(STATIC, "viewer.html"), encoding="utf-8") as handle:
            html = handle.read()
        for placeholder, static in (("/*STYLE*/", "viewer.css"), ("/*SCRIPT*/", "viewer.js")):
            with open(os.path.join(STATIC, static), encoding="utf-8") as handle:
                html = html.replace(placeholder, handle.read())
        html = html.replace("TITLE", _escape(self.manifest["title"]))
        with open(os.path.join(self.temporary, "index.html"), "w", encoding="utf-8") as handle:
            handle.write(html)
        open(os.path.join(self.temporary, MARKER), "w").close()
        os.chmod(self.temporary, 0o777 & ~_umask())
        replace_folder(self.temporary, self.folder, KINDS["viewer"].owns)
        return os.path.join(self.folder, "index.html")

    def abandon(self):
        shutil.rmtree(self.temporary, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abandon()


def _escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
