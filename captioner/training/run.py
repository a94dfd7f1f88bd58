"""Running a training: ``train`` (a captioner, or its self-critical fine-tuning) and
``train_ram`` (a Recurrent Attention Model), with every default resolved here, so that the
Python API and the command line (``captioner.commands.train``) train alike.

    train(out, coco=DIR | karpathy=FILE, images=DIR, model_config, train_config, ...)
    train_ram(out, data=None | digits="translated" | image_folder=DIR, ...)

Each returns its model folder (``captioner.load_model`` reads it).
"""

import os
import sys

from captioner.config import RAM_EPOCHS, ModelConfig, RamConfig, TrainConfig
from captioner.data import classification
from captioner.data.coco import CaptionSource
from captioner.domain import summarise
from captioner.errors import ConfigError
from captioner.evaluation import format_scores
from captioner.tasks import load
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.ram import RamTrainer
from captioner.training.scst import SelfCriticalTrainer

DOMAIN_IMAGES = 2000  # training images summarised for out-of-domain marking (captioner.domain)


def train_config_for(task, **given):
    """The TrainConfig of ``task`` ("caption" or "ram") with the ``given`` fields: the
    defaults the fields leave to the task (the RAM trains for ``RAM_EPOCHS`` epochs, in
    float32)."""
    if task == "ram" and given.get("epochs") is None:
        given["epochs"] = RAM_EPOCHS
    if task == "ram" and given.get("dtype_policy") is None:
        given["dtype_policy"] = "float32"  # a small model: 16 bits would gain nothing
    return TrainConfig.of(**{key: value for key, value in given.items() if value is not None})


def train(out, coco=None, karpathy=None, images=None, model_config=None, train_config=None,
          splits=("train", "val", "test"), resume=False, progress=True, command="",
          feature_cache=True, feature_dir=None, feature_dtype="float32", callbacks=(),
          init=None, overrides=None, invocation=None):
    """Trains a captioner on a COCO-layout folder (``coco``) or a Karpathy split file
    (``karpathy`` with its image folder ``images``) into the model folder ``out``.

    ``splits``: (train, validation, test) split names; a missing validation or test split
    is skipped. The best epoch's model is scored on the test split and gets a summary of
    its training images (``captioner.domain``: domain.json). ``callbacks``: Keras
    callbacks added to every epoch's ``fit()``. ``init``, ``overrides``: a model folder
    to start from, and the loss weights (``LossConfig`` fields) set anew (``CaptionTrainer``;
    ``model_config`` is
    then not used); ``train_config.self_critical.scst`` fine-tunes it self-critically
    (``captioner.training.scst``). Returns the path of the model folder
    (``captioner.load_model`` reads it). ``invocation``: the command line that started
    the run (``{"cwd", "argv"}``), recorded in its checkpoints for ``--resume DIR``.
    """
    source = CaptionSource(coco, karpathy, images)
    model_config = model_config or ModelConfig()
    train_config = train_config or TrainConfig()
    train_split, val_split, test_split = splits
    for name in ("hallucination_penalty", "mispairing_penalty"):
        if getattr(train_config.self_critical, name) and not train_config.self_critical.scst:
            raise ConfigError(f"--{name.replace('_', '-')} is a term of the --scst reward")
    loss = model_config.loss
    overrides = dict(overrides or {})
    boxed = [overrides.get(name) if init else getattr(loss, name)
             for name in ("attention_supervision", "grounding")]  # the terms that need boxes
    records, train_instances = source.split(
        train_split, instances=any(weight != 0.0 for weight in boxed)
        or train_config.self_critical.scst)
    if not init:  # by default on, wherever there are boxes
        for name, weight in zip(("attention_supervision", "grounding"), boxed):
            if weight is None:
                setattr(loss, name, 1.0 if train_instances is not None else 0.0)
    val, val_instances = source.split(val_split, required=False)
    trainer_class = SelfCriticalTrainer if train_config.self_critical.scst else CaptionTrainer
    trainer = trainer_class(TrainingData(records, val, source.description, val_instances,
                                         train_instances),
                            out, model_config, train_config,
                            weights=model_config.encoder.weights, command=command,
                            feature_cache=feature_cache, feature_dir=feature_dir,
                            feature_dtype=feature_dtype, init=init, overrides=overrides)
    trainer.invocation = invocation
    trainer.run(resume=resume, progress=progress, callbacks=callbacks)
    if trainer.placement.writes:  # where its images lie, so caption.py can tell strangers
        summary = summarise(load(out).model, [r.path for r in records],
                            [r.path for r in val], limit=DOMAIN_IMAGES, seed=train_config.seed,
                            progress=progress)
        if summary is not None:  # too few images to say what is unusual
            summary.save(out)
    test, test_instances = source.split(test_split, required=False)
    if test and trainer.placement.writes:
        scores = trainer.score_test_split((test, test_instances), f"{len(test)} images, greedy")
        print(f"test split ({len(test)} images, greedy):\n{format_scores(scores)}",
              file=sys.stderr)
    return os.fspath(out)


def ram_data(train_config, digits="translated", digit_source="mnist", canvas=60,
             clutter_pieces=4, image_folder=None, image_size=64):
    """(train, validation, test batches, class names, description) of a RAM's data: digits
    placed on a ``canvas`` (``digits``: "translated", or "cluttered" with
    ``clutter_pieces`` fragments of other digits; ``digit_source``: "mnist" or "sklearn"),
    or an ``image_folder`` with one sub-folder per class, resized to ``image_size``."""
    batch_size, seed = train_config.batch_size, train_config.seed
    if image_folder:
        *splits, classes = classification.folder_splits(image_folder, image_size, batch_size,
                                                        seed)
        return (*splits, classes, f"image folder {image_folder} ({len(classes)} classes)")
    clutter = clutter_pieces if digits == "cluttered" else 0
    kind = f"cluttered ({clutter} fragments)" if clutter else "translated"
    splits = classification.digit_splits(*classification.load_digits(digit_source),
                                         canvas=canvas, clutter=clutter,
                                         batch_size=batch_size, seed=seed)
    return (*splits, [str(k) for k in range(10)],
            f"{digit_source} digits, {kind}, {canvas}x{canvas} canvas")


def train_ram(out, data=None, model_config=None, train_config=None, resume=False,
              progress=True, command="", callbacks=(), invocation=None, **data_options):
    """Trains a RAM into the model folder ``out`` and scores it on the test split.

    ``data``: (train, validation, test batches, class names, description), e.g. of
    ``captioner.data.classification.digit_splits``; by default made by ``ram_data`` from
    ``data_options`` (digits, digit_source, canvas, clutter_pieces, image_folder,
    image_size). ``train_config``: by default ``RAM_EPOCHS`` epochs. ``model_config``'s
    input size and classes are set from the data, its seed (if unset) from
    ``train_config``. ``callbacks``: Keras callbacks added to every epoch's ``fit()``.
    ``invocation``: as ``train``'s. Returns the folder.
    """
    model_config = model_config or RamConfig()
    train_config = train_config or train_config_for("ram")
    train, val, test, classes, source = data or ram_data(train_config, **data_options)
    model_config.height, model_config.width, model_config.channels = train.input_shape
    model_config.classes = len(classes)
    if model_config.seed is None:
        model_config.seed = train_config.seed
    trainer = RamTrainer(train, val, out, model_config, train_config, classes, source, command)
    trainer.invocation = invocation
    trainer.run(resume=resume, progress=progress, callbacks=callbacks)
    if not trainer.placement.writes:
        return os.fspath(out)
    scores = trainer.score_test_split(test, f"{len(test.labels)} images")
    print(f"test error {100 * scores['error']:.2f}% ({len(test.labels)} images)",
          file=sys.stderr)
    return os.fspath(out)
