"""The model folder: one format for every model kind, and the one loader.

A model is a folder::

    model.keras     the Keras model with its full configuration, no optimizer state
                    (loads with safe_mode on, on TensorFlow or JAX)
    config.json     {"kind": "captioner" | "ram", "model": every field of its config,
                     "classes": the RAM's class names, "training": ..., "data": ...}
                    (the readable copy: the model itself is read from model.keras)
    vocab.json      a captioner's vocabulary
    domain.json     a captioner's summary of its training images (``captioner.domain``),
                    where it has one
    MODEL_CARD.md   how it was made, and its scores

Every file is written atomically. ``load_model(folder)`` reads ``config.json``'s kind,
loads the model and its labels (vocabulary or class names), checks them against each
other and returns a :class:`SavedModel`; nothing else reads ``config.json`` or
``domain.json``. Folders from
before this format (the config in ``config.json`` may lack fields added since) load too:
the model's own configuration in ``model.keras`` is complete, and is what ``config``
reports.
"""

import dataclasses
import os

import keras

from captioner import io
from captioner.data.vocab import Vocabulary
from captioner.domain import Domain
from captioner.errors import CaptionerError, DataError, ModelError
from captioner.models.captioner import Captioner
from captioner.models.ram import RecurrentAttentionModel

MODEL_FILE, VOCAB_FILE, CONFIG_FILE, CARD_FILE, DOMAIN_FILE = (
    "model.keras", "vocab.json", "config.json", "MODEL_CARD.md", "domain.json")
KINDS = {model.kind: model for model in (Captioner, RecurrentAttentionModel)}


@dataclasses.dataclass
class SavedModel:
    """A loaded model folder."""
    kind: str                       # "captioner" or "ram"
    model: keras.Model
    config: dict                    # config.json, with the model's complete configuration
    folder: str = ""
    vocabulary: Vocabulary = None   # a captioner's
    classes: list = None            # a RAM's class names
    domain: object = None           # a captioner's captioner.domain.Domain, if it has one

    @property
    def labels(self):
        """What the model's outputs index: the vocabulary, or the class names."""
        return self.vocabulary if self.kind == "captioner" else self.classes


def kind_of(model):
    """The kind name of a model instance; ModelError for anything else."""
    for kind, model_class in KINDS.items():
        if isinstance(model, model_class):
            return kind
    raise ModelError(f"Not a model this project saves: {type(model).__name__}. "
                     f"Known kinds: {', '.join(KINDS)}")


def check_vocabulary(model, vocabulary, where="the vocabulary"):
    """Raises ModelError unless ``vocabulary`` is the one ``model`` was trained with."""
    config = model.model_config
    if len(vocabulary) != config.vocab_size:
        raise ModelError(f"Model and vocabulary do not match: the model has {config.vocab_size} "
                         f"words, {where} has {len(vocabulary)}")
    if config.vocab_hash and vocabulary.hash != config.vocab_hash:
        raise ModelError(f"Model and vocabulary do not match: {where} is not the one the model "
                         "was trained with (hash differs)")


def check_classes(model, classes, where="the class names"):
    """Raises ModelError unless ``classes`` is a list of one name per class of ``model``."""
    if not isinstance(classes, list) or len(classes) != model.model_config.classes:
        count = len(classes) if isinstance(classes, list) else "no list of"
        raise ModelError(f"Model and class names do not match: the model has "
                         f"{model.model_config.classes} classes, {where} has {count} names")


def save_model(folder, model, labels, card=None, extra=None, domain=None):
    """Writes ``model`` as a model folder (see the module docstring), each file atomically.

    Args:
        labels: a captioner's Vocabulary, or a RAM's list of class names.
        card: the MODEL_CARD.md text, or None to leave the card out.
        extra: more top-level entries of config.json (e.g. "training", "data").
        domain: a captioner's ``captioner.domain.Domain``, or None to leave it out.
    """
    kind = kind_of(model)
    config = {"kind": kind, "model": model.model_config.to_dict()}
    if kind == "captioner":
        check_vocabulary(model, labels)
    else:
        check_classes(model, list(labels))
        config["classes"] = list(labels)
    os.makedirs(folder, exist_ok=True)
    save_keras_file(model, os.path.join(folder, MODEL_FILE))
    if kind == "captioner":
        labels.save(os.path.join(folder, VOCAB_FILE))
    io.write_json(os.path.join(folder, CONFIG_FILE), {**config, **(extra or {})})
    if card is not None:
        io.write_text(os.path.join(folder, CARD_FILE), card)
    if domain is not None:
        write_domain(folder, domain)


def write_domain(folder, domain):
    """Writes a captioner's summary of its training images into its model folder."""
    io.write_json(os.path.join(folder, DOMAIN_FILE), domain.to_dict(), indent=None)


def read_domain(folder):
    """The ``Domain`` of a model folder, or None where it has no domain.json."""
    path = os.path.join(folder, DOMAIN_FILE)
    if not os.path.isfile(path):
        return None
    return Domain.from_dict(io.read_json(path, "domain summary"), path)


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


def read_config(folder):
    """config.json of a model folder, with its kind checked (ModelError otherwise)."""
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
    if kind not in KINDS:
        raise ModelError(f"{folder} holds a model of kind {kind!r}; this version reads "
                         f"{', '.join(KINDS)}")
    return config


def load_model(folder):
    """Loads a model folder of any kind; returns a :class:`SavedModel`.

    Raises ModelError with one readable line for a missing or incomplete folder, an
    unknown kind, a file that does not load, or labels that do not match the model.
    """
    folder = os.fspath(folder)
    config = read_config(folder)
    kind = config["kind"]
    if kind == "captioner" and not os.path.isfile(os.path.join(folder, VOCAB_FILE)):
        raise ModelError(f"Not a model folder: {folder} has no {VOCAB_FILE}")
    model = load_keras_file(os.path.join(folder, MODEL_FILE))
    if not isinstance(model, KINDS[kind]):
        raise ModelError(f"{folder}: config.json says {kind}, but {MODEL_FILE} holds a "
                         f"{type(model).__name__}")
    config = {**config, "model": model.model_config.to_dict()}
    saved = SavedModel(kind, model, config, folder)
    if kind == "captioner":
        vocabulary_path = os.path.join(folder, VOCAB_FILE)
        try:
            saved.vocabulary = Vocabulary.load(vocabulary_path)
        except DataError as error:
            raise ModelError(str(error)) from None
        check_vocabulary(model, saved.vocabulary, vocabulary_path)
        saved.domain = read_domain(folder)
    else:
        saved.classes = config.get("classes")
        check_classes(model, saved.classes, os.path.join(folder, CONFIG_FILE))
    return saved
