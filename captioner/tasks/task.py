"""What every task object shares: it is made from, and saved as, a model folder of its own
kind (``captioner.saving``), and it answers images in batches."""

import os

import numpy as np

from captioner.data.images import Unreadable, load_image, read_batch
from captioner.saving import read_card, read_folder, write_folder


class Task:
    """Base of the task objects. Subclasses set ``kind`` (the model folder's kind),
    ``model_class`` and ``files`` (their labels' files), and implement ``from_files``
    (the folder's labels -> the task) and ``save_labels``.

    Attributes: ``model``, ``config`` (config.json), ``folder`` (where it was loaded from,
    "" for one made in memory).
    """

    kind = None
    model_class = None
    files = ()
    config_keys = ("kind", "model")  # config.json's entries the task writes itself

    @classmethod
    def from_folder(cls, folder, config=None):
        """Loads a model folder of this task's kind (``config``: its config.json, where
        already read); ModelError for a folder of another kind, or one that does not
        load."""
        folder = os.fspath(folder)
        config, model = read_folder(folder, cls.kind, cls.model_class, cls.files, config)
        return cls.from_files(folder, config, model)

    @classmethod
    def from_files(cls, folder, config, model):
        raise NotImplementedError

    def save_labels(self, folder):
        """Writes the task's own files (vocabulary, class names in config.json...)."""

    def save(self, folder, card=None, config=None):
        """Writes this task as a model folder: the model, config.json (with ``config``'s
        entries, by default those it was loaded with), its labels and the model card
        (``card``, by default the one of the folder it came from); returns the folder."""
        if config is None:
            config = {key: value for key, value in self.config.items()
                      if key not in self.config_keys}
        card = card if card is not None else read_card(self.folder)
        self.check_labels()
        write_folder(folder, self.kind, self.model, {**self.own_config(), **config}, card)
        self.save_labels(folder)
        return os.fspath(folder)

    def own_config(self):
        """config.json's entries of the task's labels (the RAM's class names)."""
        return {}

    def check_labels(self, where="the labels"):
        """ModelError unless the labels fit the model."""


def read_image(image):
    """A file path -> its RGB array; an array -> itself, checked."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError("An image array must be (height, width, 3) uint8 RGB. Received: "
                         f"shape {array.shape}, dtype {array.dtype}")
    return array


def path_of(image):
    """The file an input names, or None for an array."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else None


def batches(images, batch_size, read, unreadable):
    """Per batch of ``images``, (what ``read`` made of each readable one, the batch's
    items in order: an ``Unreadable`` where one could not be read, else None), with
    ``unreadable`` "raise" (the first unreadable file raises) or "report"."""
    images = list(images)
    for start in range(0, len(images), batch_size):
        read_items = read_batch(images[start:start + batch_size], read, unreadable)
        yield ([item for item in read_items if not isinstance(item, Unreadable)],
               read_items)


def in_order(read_items, answers):
    """The batch's results in input order: each Unreadable where it was, the readable
    inputs' ``answers`` (in order) between them."""
    answers = iter(answers)
    return [item if isinstance(item, Unreadable) else next(answers) for item in read_items]
