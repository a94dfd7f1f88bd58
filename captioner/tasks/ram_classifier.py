"""``RAMClassifier``: a Recurrent Attention Model with its class names."""

import os

import numpy as np

from captioner.data.images import Unreadable
from captioner.saving import save_model
from captioner.tasks.results import Classification
from captioner.tasks.task import Task


class RAMClassifier(Task):
    """A trained Recurrent Attention Model that owns its Keras model and class names.

        classifier = RAMClassifier.from_folder("runs/ram")
        answer = classifier.classify(["digit.png"])[0]
        answer.label, answer.glimpses                   # class; glimpse centres in pixels

    Attributes: ``model`` (``captioner.models.ram.RecurrentAttentionModel``), ``classes``
    (names), ``config`` (config.json), ``folder``.
    """

    kind = "ram"
    domain = None  # no out-of-domain summary

    def __init__(self, model, classes, config=None, folder=""):
        self.model, self.classes = model, list(classes)
        self.config = config or {"kind": self.kind, "model": model.model_config.to_dict(),
                                 "classes": self.classes}
        self.folder = os.fspath(folder)

    @classmethod
    def from_saved(cls, saved):
        return cls(saved.model, saved.classes, saved.config, saved.folder)

    def save(self, folder, card=None):
        extra = {key: value for key, value in self.config.items()
                 if key not in ("kind", "model", "classes")}
        save_model(folder, self.model, self.classes, card, extra)
        return os.fspath(folder)

    @property
    def labels(self):
        return self.classes

    def answers(self, images, batch_size=16, unreadable="raise"):
        """Yields per image its :class:`Classification` (or an ``Unreadable``)."""
        from captioner.inference import classify_files
        for item in classify_files(self.model, self.classes, list(images), batch_size,
                                   unreadable):
            if isinstance(item, Unreadable):
                yield item
                continue
            path, image, answer = item
            yield Classification(
                os.fspath(path) if isinstance(path, (str, os.PathLike)) else None, image,
                answer["label"], answer["probability"], np.asarray(answer["probabilities"]),
                np.asarray(answer["locations"]), answer["glimpses"],
                np.asarray(answer["patches"]))

    def classify(self, images, batch_size=16, unreadable="raise"):
        """Classifies images (file paths and/or RGB arrays): a list of
        :class:`Classification` (and ``Unreadable``, with ``unreadable="report"``)."""
        return list(self.answers(images, batch_size, unreadable))
