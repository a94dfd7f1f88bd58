"""Training a captioner: epochs of ``fit()``, validation, checkpoints, exact resume.

Output folder::

    OUT/model.keras, vocab.json, config.json, MODEL_CARD.md   the best epoch (validation BLEU-4)
    OUT/metrics.json                                          one row per epoch
    OUT/training_curves.png                                   loss and BLEU-4 per epoch
    OUT/checkpoint/last.keras, state.json                     the last epoch, with optimizer

Every file is written atomically. ``resume=True`` continues from the checkpoint: the
weights, the optimizer's state (moments, step count, hence the learning rate), the epoch,
and the data order, which is a pure function of (seed, epoch).
"""

import dataclasses
import os
import sys
import time

import keras
import numpy as np

from captioner import io
from captioner.config import ModelConfig, TrainConfig
from captioner.data.dataset import CaptionBatches
from captioner.data.features import FeatureCache
from captioner.data.vocab import Vocabulary, tokenize
from captioner.errors import ConfigError, DataError
from captioner.evaluation import evaluate
from captioner.models.captioner import (VOCAB_FILE, create_captioner, load_keras_file,
                                        save_model_dir)
from captioner.render import save_training_curves
from captioner.training.progress import ProgressBar

CHECKPOINT_DIR = "checkpoint"
MAX_CAPTION_WORDS = 40


def reseed_layers(model, seed, epoch):
    """Sets every layer's random state (dropout masks) from (seed, epoch, layer).

    A .keras file does not store SeedGenerator states, so without this a resumed run would
    draw other dropout masks than the uninterrupted one.
    """
    generators = [g for layer in model._flatten_layers() for g in layer._seed_generators]
    for index, generator in enumerate(generators):
        generator.state.assign(np.array([seed * 1009 + index, epoch], dtype=generator.state.dtype))


def compile_for_training(model, config, steps_per_epoch):
    """Adam with gradient clipping and a cosine decay of the learning rate over the run
    (``config``: a TrainConfig); the captioner and the RAM train with it."""
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * steps_per_epoch,
        alpha=config.min_learning_rate / config.learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm))


@dataclasses.dataclass
class TrainingData:
    train: list                 # ImageRecords
    val: list                   # ImageRecords (may be empty: then no validation scores)
    source: str                 # a description for the model card
    val_instances: dict = None  # instances of the validation images, for grounding scores


VALIDATION_METRICS = ("BLEU", "ROUGE-L", "CIDEr")  # METEOR's Java start-up is kept for tests


def _metric_key(name):
    return "val_" + name.lower().replace("-", "")


def validation_scores(model, vocabulary, batches, limit, instances=None):
    """Validation loss (teacher-forced), and the scores of free-running greedy captions of
    the first ``limit`` images: BLEU, ROUGE-L, CIDEr-D, and grounding with instances."""
    results = model.evaluate(batches, verbose=0, return_dict=True)
    records = batches.records[:limit] if limit else batches.records
    evaluation = evaluate(model, vocabulary, records, instances, batches.batch_size,
                          batches=batches.inputs,
                          metrics=VALIDATION_METRICS)
    keep = [key for key in evaluation.scores if key not in ("images", "mentions", "objects",
                                                            "captions", "words", "ratio")]
    return {"val_loss": float(results["loss"]), "val_nll": float(results["nll"]),
            **{_metric_key(key): float(evaluation.scores[key]) for key in keep}}


def _model_card(command, data, model_config, train_config, history, best, wall_time):
    best_row = next(row for row in history if row["epoch"] == best)
    lines = [
        "# captioner model card", "",
        "Show, Attend and Tell captioner (CNN encoder, LSTM decoder with "
        f"{model_config.decoder.attention} {model_config.decoder.score} attention).", "",
        "## How it was made", "", "```", command, "```", "",
        f"- data: {data.source} ({len(data.train)} training images, {len(data.val)} validation)",
        f"- backbone: {model_config.encoder.backbone} at {model_config.encoder.image_size} px, "
        f"feature grid {best_row.get('grid', '')}",
        f"- training: {train_config.epochs} epochs, batch {train_config.batch_size}, "
        f"seed {train_config.seed}; this is epoch {best}, the best by validation CIDEr-D",
        f"- wall time to this epoch: {wall_time / 60:.1f} min", "",
        "## Scores (best epoch)", "",
        "| metric | value |", "|---|---|",
    ]
    lines += [f"| {key} | {value:.4f} |" for key, value in best_row.items()
              if isinstance(value, float)]
    return "\n".join(lines) + "\n"


class Trainer:
    """Trains a Captioner on ``data`` into ``out`` (see the module docstring)."""

    def __init__(self, data, out, model_config, train_config, weights=None, command="",
                 feature_cache=True, feature_dir=None):
        if not data.train:
            raise DataError("No training images with captions.")
        self.data, self.out, self.weights, self.command = data, out, weights, command
        self.feature_cache, self.feature_dir = feature_cache, feature_dir
        self.model_config, self.train_config = model_config, train_config
        self.checkpoint = os.path.join(out, CHECKPOINT_DIR)

    def _start(self, resume):
        state_path = os.path.join(self.checkpoint, "state.json")
        if resume and os.path.isfile(state_path):
            state = io.read_json(state_path, "training state")
            # More epochs may be asked for; anything else would not be the same run.
            before = {**TrainConfig().to_dict(), **state["train_config"]}  # older runs lack new keys
            changed = sorted(k for k, v in self.train_config.to_dict().items()
                             if before[k] != v
                             and k not in ("epochs", "validation_images"))
            if changed:
                raise ConfigError(f"--resume with different training settings ({', '.join(changed)}) "
                                  f"than the run in {self.out}; drop those options to continue it")
            self.vocabulary = Vocabulary.load(os.path.join(self.out, VOCAB_FILE))
            self.model_config = ModelConfig.from_dict(state["model_config"])
            model = load_keras_file(os.path.join(self.checkpoint, "last.keras"), compile=True)
            print(f"resuming {self.out} after epoch {state['epoch']}", file=sys.stderr)
            state.setdefault("best_cider", -1.0)  # runs from before CIDEr chose the best epoch
            return model, state
        if os.path.isfile(state_path):
            raise ConfigError(f"{self.out} already holds a training run: add --resume to "
                              "continue it, or choose another --out")
        self.vocabulary = Vocabulary.build(
            (c for r in self.data.train for c in r.captions), self.train_config.min_count)
        longest = max(len(tokenize(c)) for r in self.data.train for c in r.captions)
        self.model_config.vocab_size = len(self.vocabulary)
        self.model_config.vocab_hash = self.vocabulary.hash
        self.model_config.max_length = min(longest, MAX_CAPTION_WORDS)
        self.vocabulary.save(os.path.join(self.out, VOCAB_FILE))
        model = create_captioner(self.model_config, self.weights, seed=self.train_config.seed)
        return model, {"epoch": 0, "history": [], "best_epoch": None, "best_cider": -1.0,
                       "wall_time": 0.0}

    def _features(self, model, records, progress):
        """A FeatureCache for ``records`` when the encoder is frozen (None otherwise: the
        batches then carry images and the encoder runs every step)."""
        if not self.feature_cache or model.encoder.fine_tune:
            return None
        return FeatureCache(model.encoder, [r.path for r in records], self.feature_dir,
                            batch_size=self.train_config.batch_size, progress=progress)

    def _anneal_context_rate(self, model, epoch):
        """Hard attention: the share of expected contexts falls linearly from 1 at epoch 0
        to ``expected_context_rate`` at ``hard_warmup_epochs`` (no warm-up: constant)."""
        if self.model_config.decoder.attention != "hard":
            return
        target, warmup = self.model_config.decoder.expected_context_rate, \
            self.train_config.hard_warmup_epochs
        progress = min(epoch / warmup, 1.0) if warmup else 1.0
        model.decoder.context_rate.assign(1.0 + (target - 1.0) * progress)

    def run(self, resume=False, progress=True, stop_after=None):
        """Trains to ``train_config.epochs``; returns the history (list of dicts).

        ``stop_after`` ends this call after that many epochs (the run can be resumed), as
        an interruption would. The learning-rate schedule spans ``epochs``, so resuming with
        a larger ``epochs`` continues at the schedule's final rate.
        """
        os.makedirs(self.out, exist_ok=True)
        model, state = self._start(resume)
        config, encoder = self.train_config, self.model_config.encoder
        train_batches = CaptionBatches(self.data.train, self.vocabulary, encoder.image_size,
                                       encoder.backbone, config.batch_size,
                                       self.model_config.max_length, seed=config.seed,
                                       images=self._features(model, self.data.train, progress))
        val_batches = CaptionBatches(self.data.val, self.vocabulary, encoder.image_size,
                                     encoder.backbone, config.batch_size,
                                     self.model_config.max_length, shuffle=False,
                                     images=self._features(model, self.data.val, progress)) \
            if self.data.val else None
        if state["epoch"] == 0:
            compile_for_training(model, config, len(train_batches))
        history = state["history"]
        last = config.epochs if stop_after is None else min(config.epochs, state["epoch"] + stop_after)
        for epoch in range(state["epoch"], last):
            started = time.time()
            train_batches.set_epoch(epoch)
            reseed_layers(model, config.seed, epoch)
            self._anneal_context_rate(model, epoch)
            callbacks = [ProgressBar(len(train_batches), f"epoch {epoch + 1}/{config.epochs}")] \
                if progress else []
            # shuffle=False: the batches shuffle themselves from (seed, epoch); fit()'s own
            # shuffle draws on Python's global random state, which a resumed run cannot restore.
            logs = model.fit(train_batches, epochs=1, verbose=0, shuffle=False,
                             callbacks=callbacks).history
            row = {"epoch": epoch + 1, "train_seconds": time.time() - started,
                   "loss": float(logs["loss"][-1]),
                   "nll": float(logs["nll"][-1]), "grid": "x".join(map(str, model.grid_shape))}
            if val_batches is not None:
                row.update(validation_scores(model, self.vocabulary, val_batches,
                                             config.validation_images, self.data.val_instances))
            row["seconds"] = time.time() - started
            history.append(row)
            state["wall_time"] += row["seconds"]
            improved = row.get("val_cider", 0.0) > state["best_cider"]
            if improved:
                state["best_epoch"], state["best_cider"] = epoch + 1, row.get("val_cider", 0.0)
            state.update(epoch=epoch + 1, history=history,
                         train_config=config.to_dict(), model_config=self.model_config.to_dict())
            self._save(model, state, improved)
            print(f"epoch {epoch + 1}/{config.epochs}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), file=sys.stderr)
        return history

    def _save(self, model, state, improved):
        with io.atomic_path(os.path.join(self.checkpoint, "last.keras")) as temporary:
            model.save(temporary)
        if improved:
            card = _model_card(self.command, self.data, self.model_config, self.train_config,
                               state["history"], state["best_epoch"], state["wall_time"])
            save_model_dir(model, self.vocabulary, self.out, card,
                           extra_config={"training": self.train_config.to_dict(),
                                         "data": self.data.source})
        io.write_json(os.path.join(self.out, "metrics.json"),
                      {"best_epoch": state["best_epoch"], "history": state["history"]})
        io.write_json(os.path.join(self.checkpoint, "state.json"), state)  # last: marks it done
        if all("val_cider" in row for row in state["history"]):
            save_training_curves(os.path.join(self.out, "training_curves.png"), state["history"])


def score_test_split(out, records, instances=None, batch_size=32):
    """Every metric of the saved best model on ``records`` (greedy); added to metrics.json
    and the model card, and returned."""
    from captioner.models.captioner import CARD_FILE, load_model_dir
    model, vocabulary, _ = load_model_dir(out)
    scores = evaluate(model, vocabulary, records, instances, batch_size).scores
    metrics_path = os.path.join(out, "metrics.json")
    metrics = io.read_json(metrics_path, "metrics file")
    metrics["test"] = scores
    io.write_json(metrics_path, metrics)
    card_path = os.path.join(out, CARD_FILE)
    if os.path.isfile(card_path):
        with open(card_path, encoding="utf-8") as handle:
            card = handle.read().split("\n## Test split")[0].rstrip("\n")
        rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in scores.items()
                         if isinstance(v, float))
        io.write_text(card_path, f"{card}\n\n## Test split ({len(records)} images, greedy)\n\n"
                                 f"| metric | value |\n|---|---|\n{rows}\n")
    return scores
