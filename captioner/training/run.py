"""Running a training: ``train`` (a captioner, or its self-critical fine-tuning) and
``train_ram`` (a Recurrent Attention Model), with every default resolved here, so that the
Python API and the command line (``captioner.commands.train``) train alike; ``resume``
continues a run from its checkpoint's record (``captioner.training.record``).

    train(out, coco=DIR | karpathy=FILE, images=DIR, model_config, train_config, ...)
    train_ram(out, data=None | digits="translated" | image_folder=DIR, ...)
    resume(out, epochs=N, ...)

Each returns its model folder (``captioner.load_model`` reads it).
"""

import dataclasses
import os

from captioner.config import ModelConfig, RAMConfig, TrainConfig, train_config_for
from captioner.data import classification
from captioner.data.coco import CaptionSource
from captioner.errors import ConfigError
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.ram import RAMTrainer
from captioner.training.record import RunRecord, read_record
from captioner.training.scst import SelfCriticalTrainer


def train(out, coco=None, karpathy=None, images=None, model_config=None, train_config=None,
          splits=("train", "val", "test"), resume=False, progress=True, command="",
          feature_cache=True, feature_dir=None, feature_dtype="float16", callbacks=(),
          init=None, overrides=None):
    """Trains a captioner on a COCO-layout folder (``coco``) or a Karpathy split file
    (``karpathy`` with its image folder ``images``) into the model folder ``out``.

    ``splits``: (train, validation, test) split names; a missing validation or test split
    is skipped. The best epoch's model is scored on the test split and gets a summary of
    its training images (``captioner.domain``: domain.json). ``callbacks``: Keras
    callbacks added to every epoch's ``fit()``. ``init``, ``overrides``: a model folder
    to start from, and the loss weights (``LossConfig`` fields) set anew (``CaptionTrainer``;
    ``model_config`` is then not used); ``train_config.self_critical.scst`` fine-tunes it
    self-critically (``captioner.training.scst``). The run's checkpoints record all of
    this (``resume`` continues it). Returns the path of the model folder
    (``captioner.load_model`` reads it).
    """
    source = CaptionSource(coco, karpathy, images)
    model_config = model_config or ModelConfig()
    train_config = train_config or TrainConfig()
    overrides = dict(overrides or {})
    record = RunRecord("caption", dict(coco=coco, karpathy=karpathy, images=images,
                                       splits=list(splits)),
                       model_config.to_dict(), train_config.to_dict(),
                       dict(feature_cache=feature_cache, feature_dir=feature_dir,
                            feature_dtype=feature_dtype), init, overrides, command)
    train_split, val_split, test_split = splits
    for name in ("hallucination_penalty", "mispairing_penalty"):
        if getattr(train_config.self_critical, name) and not train_config.self_critical.scst:
            raise ConfigError(f"--{name.replace('_', '-')} is a term of the --scst reward")
    loss = model_config.loss
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
    test, test_instances = source.split(test_split, required=False)
    trainer_class = SelfCriticalTrainer if train_config.self_critical.scst else CaptionTrainer
    trainer = trainer_class(TrainingData(records, val, source.description, val_instances,
                                         train_instances, test, test_instances),
                            out, model_config, train_config,
                            weights=model_config.encoder.weights, command=command,
                            feature_cache=feature_cache, feature_dir=feature_dir,
                            feature_dtype=feature_dtype, init=init, overrides=overrides)
    trainer.record = record
    trainer.run(resume=resume, progress=progress, callbacks=callbacks)
    return os.fspath(out)


def resume(out, progress=True, callbacks=(), data=None, **changes):
    """Continues the run in ``out`` from its newest checkpoint's record, with ``changes``:
    fields of ``TrainConfig.RESUMABLE``'s sections (``epochs=60``) and the feature
    cache's options (``feature_dir``, ``feature_dtype``, ``feature_cache``); ``data``:
    {option: new path} of data that moved (``coco``, ``images``...). ConfigError for
    anything else, naming it. Returns the model folder."""
    record = read_record(out)
    if record is None:
        raise ConfigError(f"--resume {out}: its checkpoints were written before they held "
                          "their run's record; give its options again with --resume, e.g. "
                          f"`captioner train --coco DIR ... --out {out} --resume`")
    return run_record(record, out, changes, data, progress=progress, callbacks=callbacks)


def run_record(record, out, changes=None, data=None, progress=True, callbacks=()):
    """Runs ``record`` (a RunRecord) into ``out`` as a resume, with ``changes`` and moved
    ``data`` (``resume``'s)."""
    record.relocate(out, **dict(data or {}))
    changes = dict(changes or {})
    features = {key: changes.pop(key) for key in list(changes) if key in record.features}
    resumable = {field.name for name in TrainConfig.RESUMABLE
                 for field in dataclasses.fields(TrainConfig.sections()[name])}
    refused = sorted(set(changes) - resumable)
    if refused:
        raise ConfigError(
            f"--resume {out} keeps the run's own {', '.join(refused)}: a resume may change "
            f"only the {', '.join(TrainConfig.RESUMABLE)} options and the feature cache's "
            "(train anew into another --out to change the rest)")
    train_config = TrainConfig.of(**{**TrainConfig.from_dict(record.train_config).flat(),
                                     **changes})
    common = dict(resume=True, progress=progress, callbacks=callbacks, command=record.command,
                  train_config=train_config)
    if record.task == "ram":
        return train_ram(out, model_config=RAMConfig.from_dict(record.model_config),
                         **record.data, **common)
    data = dict(record.data)
    splits = tuple(data.pop("splits"))
    return train(out, model_config=ModelConfig.from_dict(record.model_config), splits=splits,
                 init=record.init, overrides=record.overrides,
                 **{**record.features, **features}, **data, **common)


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
              progress=True, command="", callbacks=(), **data_options):
    """Trains a RAM into the model folder ``out`` and scores it on the test split.

    ``data``: (train, validation, test batches, class names, description), e.g. of
    ``captioner.data.classification.digit_splits``; by default made by ``ram_data`` from
    ``data_options`` (digits, digit_source, canvas, clutter_pieces, image_folder,
    image_size). ``train_config``: by default ``RAM_EPOCHS`` epochs. ``model_config``'s
    input size and classes are set from the data, its seed (if unset) from
    ``train_config``. ``callbacks``: Keras callbacks added to every epoch's ``fit()``.
    The run's checkpoints record all of this where the data are ``data_options``
    (``resume`` continues it). Returns the folder.
    """
    model_config = model_config or RAMConfig()
    train_config = train_config or train_config_for("ram")
    record = None if data else RunRecord("ram", dict(data_options), model_config.to_dict(),
                                         train_config.to_dict(), command=command)
    train, val, test, classes, source = data or ram_data(train_config, **data_options)
    model_config.height, model_config.width, model_config.channels = train.input_shape
    model_config.classes = len(classes)
    if model_config.seed is None:
        model_config.seed = train_config.seed
    trainer = RAMTrainer(train, val, out, model_config, train_config, classes, source,
                         command, test)
    trainer.record = record
    trainer.run(resume=resume, progress=progress, callbacks=callbacks)
    return os.fspath(out)
