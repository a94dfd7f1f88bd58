"""``RAMClassifier``: a Recurrent Attention Model with its class names."""

import os

import numpy as np
from keras import ops

from captioner.data.classification import prepare_image
from captioner.errors import ModelError
from captioner.geometry import location_to_pixels
from captioner.models.ram import RecurrentAttentionModel
from captioner.results import Classification
from captioner.saving import CONFIG_FILE
from captioner.tasks.task import Task, batches, in_order, path_of, read_image


def check_classes(model, classes, where="the class names"):
    """Raises ModelError unless ``classes`` is a list of one name per class of ``model``."""
    if not isinstance(classes, list) or len(classes) != model.model_config.classes:
        count = len(classes) if isinstance(classes, list) else "no list of"
        raise ModelError(f"Model and class names do not match: the model has "
                         f"{model.model_config.classes} classes, {where} has {count} names")


class RAMClassifier(Task):
    """A trained Recurrent Attention Model that owns its Keras model and class names.

        classifier = RAMClassifier.from_folder("runs/ram")
        answer = classifier.classify(["digit.png"])[0]
        answer.label, answer.glimpses                   # class; glimpse centres in pixels

    Attributes: ``model`` (``captioner.models.ram.RecurrentAttentionModel``), ``classes``
    (names), ``config`` (config.json), ``folder``.
    """

    kind = "ram"
    model_class = RecurrentAttentionModel
    config_keys = ("kind", "model", "classes")
    domain = None  # no out-of-domain summary

    def __init__(self, model, classes, config=None, folder=""):
        classes = list(classes) if isinstance(classes, (list, tuple)) else classes
        check_classes(model, classes)
        self.model, self.classes = model, classes
        self.config = config or {"kind": self.kind, "model": model.model_config.to_dict(),
                                 "classes": self.classes}
        self.folder = os.fspath(folder)

    @classmethod
    def from_files(cls, folder, config, model):
        check_classes(model, config.get("classes"), os.path.join(folder, CONFIG_FILE))
        return cls(model, config["classes"], config, folder)

    def own_config(self):
        return {"classes": self.classes}

    def check_labels(self):
        check_classes(self.model, self.classes)

    def answers(self, images, batch_size=16, unreadable="raise"):
        """Yields per image its :class:`Classification` (or an ``Unreadable``)."""
        config = self.model.model_config

        def read(image):  # the image as the model sees it, (H, W, C) in [0, 1]
            return image, prepare_image(read_image(image), config.height, config.width,
                                        config.channels)

        for good, read_items in batches(images, batch_size, read, unreadable):
            answers = []
            if good:
                outputs = self.model.predict_on_batch(np.stack([image for _, image in good]))
                probabilities = ops.convert_to_numpy(ops.softmax(outputs["logits"], axis=-1))
                locations = ops.convert_to_numpy(outputs["locations"])
                patches = ops.convert_to_numpy(outputs["patches"])
                for row, (path, image) in enumerate(good):
                    best = int(probabilities[row].argmax())
                    answers.append(Classification(
                        path_of(path), image, self.classes[best],
                        float(probabilities[row, best]), probabilities[row], locations[row],
                        [tuple(float(v) for v in point) for point in location_to_pixels(
                            locations[row], config.height, config.width)], patches[row]))
            yield from in_order(read_items, answers)

    def classify(self, images, batch_size=16, unreadable="raise"):
        """Classifies images (file paths and/or RGB arrays): a list of
        :class:`Classification` (and ``Unreadable``, with ``unreadable="report"``)."""
        return list(self.answers(images, batch_size, unreadable))
