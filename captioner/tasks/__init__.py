"""The task objects: a trained model with everything it needs to answer (keras-hub's shape).

    ImageCaptioner.from_folder(dir)   caption, evaluate, export, save
    RAMClassifier.from_folder(dir)    classify, save
    load(dir)                         whichever of the two the folder holds
"""

from captioner.saving import load_model
from captioner.tasks.image_captioner import ImageCaptioner
from captioner.tasks.ram_classifier import RAMClassifier
from captioner.tasks.results import Caption, Classification, ImageCaptions

TASKS = {task.kind: task for task in (ImageCaptioner, RAMClassifier)}

__all__ = ["ImageCaptioner", "RAMClassifier", "Caption", "ImageCaptions", "Classification",
           "load", "caption", "TASKS"]


def load(folder):
    """The task object of a model folder of any kind (ModelError for a bad folder)."""
    saved = load_model(folder)
    return TASKS[saved.kind].from_saved(saved)


def caption(model, images, search=None, batch_size=16, unreadable="raise"):
    """Captions images with a captioner: a model folder or an :class:`ImageCaptioner`
    (``ImageCaptioner.caption``; ``search``: a ``SearchConfig``). A RAM classifies:
    ``RAMClassifier.classify``."""
    from captioner.errors import ModelError
    task = load(model) if not isinstance(model, (ImageCaptioner, RAMClassifier)) else model
    if task.kind != ImageCaptioner.kind:
        raise ModelError(f"{task.folder or 'this model'} is a {task.kind}: it classifies "
                         "images (RAMClassifier.classify), it does not caption them")
    return task.caption(images, search, batch_size, unreadable)
