"""The model folder: one format for every model kind, written and read here for every task.

A model is a folder::

    model.keras     the Keras model with its full configuration, no optimizer state
                    (loads with safe_mode on, on TensorFlow or JAX)
    config.json     {"kind": "captioner" | "ram", "model": every field of its config,
                     "classes": the RAM's class names, "training": ..., "data": ...}
                    (the readable copy: the model itself is read from model.keras)
    MODEL_CARD.md   how it was made, and its scores
    ...             the task's own labels: a captioner's vocab.json and domain.json
                    (``captioner.tasks``)

Every file is written atomically. The task objects (``captioner.tasks``) load and save
folders through ``read_folder`` and ``write_folder``; they add their labels. Folders from
before this format (the config in ``config.json`` may lack fields added since) load too:
the model's own configuration in ``model.keras`` is complete, and is what ``config``
reports.
"""

import os

import keras

from captioner import io
from captioner.errors import CaptionerError, DataError, ModelError

MODEL_FILE, VOCAB_FILE, CONFIG_FILE, CARD_FILE = (
    "model.keras", "vocab.json", "config.json", "MODEL_CARD.md")


def save_keras_file(model, path, optimizer=False):
    """Saves ``model`` to a .keras file atomically. Without ``optimizer`` the file holds no
    optimizer state (a third of the size; nothing to resume): a fresh copy of the model
    from its config, with its weights, is saved. Training checkpoints keep theirs."""
    if not optimizer and getattr(model, "optimizer", None) is not None:
        bare = type(model).from_config(model.get_config())
        bare.build_by_calling()
        bare.set_weights(model.get_weights())
        model = bare
    with io.atomic_path(path) as temporary:
        model.save(temporary)


def load_keras_file(path, compile=False):
    """keras.saving.load_model with safe_mode on, and a clear error for a bad file."""
    if not os.path.isfile(path):
        raise ModelError(f"Model file not found: {path}")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except CaptionerError:
        raise
    except Exception as error:
        raise ModelError(f"Cannot load the model {path}: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from None


def read_config(folder, kinds=None):
    """config.json of a model folder, with its kind checked against ``kinds`` (ModelError
    otherwise)."""
    if not os.path.isdir(folder):
        raise ModelError(f"Model folder not found: {folder}")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ModelError(f"Not a model folder: {folder} has no {name}")
    try:
        config = io.read_json(os.path.join(folder, CONFIG_FILE), "model config")
    except DataError as error:
        raise ModelError(str(error)) from None
    kind = config.get("kind") if isinstance(config, dict) else None
    if kinds is not None and kind not in kinds:
        raise ModelError(f"{folder} holds a model of kind {kind!r}; this version reads "
                         f"{', '.join(kinds)}")
    return config


def read_folder(folder, kind, model_class, files=(), config=None):
    """(config.json with the model's complete configuration, the Keras model) of a model
    folder of ``kind`` whose model.keras holds a ``model_class``; ``files``: the task's
    own files, which must be there; ``config``: config.json where the caller read it
    already. ModelError with one line for anything else."""
    folder = os.fspath(folder)
    config = config if config is not None else read_config(folder)
    if config.get("kind") != kind:
        raise ModelError(f"{folder} holds a {config.get('kind')} model, not a {kind}")
    for name in files:
        if not os.path.isfile(os.path.join(folder, name)):
            raise ModelError(f"Not a model folder: {folder} has no {name}")
    model = load_keras_file(os.path.join(folder, MODEL_FILE))
    if not isinstance(model, model_class):
        raise ModelError(f"{folder}: config.json says {kind}, but {MODEL_FILE} holds a "
                         f"{type(model).__name__}")
    return {**config, "model": model.model_config.to_dict()}, model


def write_folder(folder, kind, model, config=None, card=None):
    """Writes model.keras, config.json ({"kind", "model", **config}) and, unless None, the
    card into ``folder`` (made where missing); the task writes its labels beside them."""
    os.makedirs(folder, exist_ok=True)
    save_keras_file(model, os.path.join(folder, MODEL_FILE))
    io.write_json(os.path.join(folder, CONFIG_FILE),
                  {"kind": kind, "model": model.model_config.to_dict(), **(config or {})})
    if card is not None:
        io.write_text(os.path.join(folder, CARD_FILE), card)


def read_card(folder):
    """A model folder's MODEL_CARD.md, or None (also for no folder)."""
    path = os.path.join(folder, CARD_FILE) if folder else ""
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()
