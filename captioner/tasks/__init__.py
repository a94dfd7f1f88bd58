"""The task objects: a trained model with everything it needs to answer (keras-hub's shape).

    ImageCaptioner.from_folder(dir)   caption, evaluate, export, save
    RAMClassifier.from_folder(dir)    classify, save
    load(dir)                         whichever of the two the folder holds
"""

import os

from captioner.errors import ModelError
from captioner.results import Caption, Classification, ImageCaptions
from captioner.saving import read_config
from captioner.tasks.image_captioner import ImageCaptioner, check_vocabulary
from captioner.tasks.ram_classifier import RAMClassifier, check_classes

TASKS = {task.kind: task for task in (ImageCaptioner, RAMClassifier)}

__all__ = ["ImageCaptioner", "RAMClassifier", "Caption", "ImageCaptions", "Classification",
           "load", "caption", "TASKS", "check_vocabulary", "check_classes"]


def load(folder=None):
    """The task object of a model folder of any kind (ModelError for a bad folder); a list
    of captioner folders: their ensemble (``ImageCaptioner.ensemble``); none: the bundled
    default model (``captioner.folders.bundled_model_folder``), from any directory."""
    if folder is None:
        from captioner.folders import bundled_model_folder
        folder = bundled_model_folder()
    if isinstance(folder, (list, tuple)):
        if len(folder) == 1:
            return load(folder[0])
        return ImageCaptioner.ensemble([load(member) for member in folder])
    config = read_config(os.fspath(folder), TASKS)
    return TASKS[config["kind"]].from_folder(folder, config)


def caption(model, images, search=None, batch_size=16, unreadable="raise"):
    """Captions images with a captioner: a model folder or an :class:`ImageCaptioner`
    (``ImageCaptioner.caption``; ``search``: a ``SearchConfig``). A RAM classifies:
    ``RAMClassifier.classify``."""
    task = load(model) if not isinstance(model, (ImageCaptioner, RAMClassifier)) else model
    if task.kind != ImageCaptioner.kind:
        raise ModelError(f"{task.folder or 'this model'} is a {task.kind}: it classifies "
                         "images (RAMClassifier.classify), it does not caption them")
    return task.caption(images, search, batch_size, unreadable)
