"""The one checkpointed epoch loop: every model kind trains through it.

``fit()`` runs one epoch at a time with a progress bar; after each epoch the loop scores
the model, picks the best epoch, and writes, each file atomically::

    OUT/model.keras, config.json, MODEL_CARD.md (+ labels)   the best epoch's model folder
    OUT/metrics.json                                         one row per epoch (+ "test")
    OUT/training_curves.png                                  the curves of those rows
    OUT/checkpoint/last.keras, state.json                    the last epoch, with optimizer

``resume=True`` continues from the checkpoint exactly: the weights, the optimizer's state
(moments, step count, hence the learning rate), the epoch, every layer's random state
(reset from (seed, epoch) before each epoch) and the data order, which the data sets draw
from (seed, epoch) themselves. A model kind plugs in through the hooks of
:class:`EpochLoop`: a new model, its data, its validation columns, its objective, its
model card and curves.
"""

import os
import sys
import time

import keras
import numpy as np

from captioner import io
from captioner.config import TrainConfig
from captioner.errors import ConfigError
from captioner.render import save_curves
from captioner.saving import CARD_FILE, load_keras_file, load_model, save_keras_file, save_model
from captioner.training.distribution import Placement, placement
from captioner.training.progress import ProgressBar

CHECKPOINT_DIR = "checkpoint"
RESUMABLE_CHANGES = ("epochs", "validation_images", "pipeline", "bad_images", "distribute",
                     "devices")  # a checkpoint resumes on another number of devices  # what a resumed run may change


def reseed_layers(model, seed, epoch):
    """Sets every layer's random state (dropout masks, sampled cells and locations) from
    (seed, epoch, layer).

    A .keras file does not store SeedGenerator states, so without this a resumed run would
    draw other random numbers than the uninterrupted one.
    """
    generators = [g for layer in model._flatten_layers() for g in layer._seed_generators]
    for index, generator in enumerate(generators):
        generator.state.assign(np.array([seed * 1009 + index, epoch], dtype=generator.state.dtype))


def fit_input(batches):
    """What ``fit()`` takes from a data set of the loop: its ``fit_input()`` (a tf.data
    pipeline, say) where it has one, else the PyDataset itself."""
    return batches.fit_input() if hasattr(batches, "fit_input") else batches


def compile_for_training(model, config, steps_per_epoch):
    """Adam with gradient clipping and a cosine decay of the learning rate over the run
    (``config``: a TrainConfig)."""
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * steps_per_epoch,
        alpha=config.min_learning_rate / config.learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm))


class EpochLoop:
    """Trains a model into ``out`` (see the module docstring).

    Subclasses implement the hooks:
        ``create_model()``: a new, built model (a new run); may write files to ``out``.
        ``restore(model)``: a resumed run; read back what ``create_model`` wrote.
        ``datasets(model)``: (train, validation or None), PyDatasets with ``set_epoch``
            (and ``fit_input()`` where ``fit()`` should get something else, a tf.data
            pipeline of the epoch).
        ``start_epoch(model, epoch)``: per-epoch settings (optional).
        ``compile(model, steps_per_epoch)``, ``train_epoch(model, train, epoch,
            callbacks)``: the optimizer, and one epoch's steps (by default ``fit()``).
        ``scores(model, logs, validation)``: the epoch's row beyond loss and times.
        ``objective(row)``: lower is better; picks the best epoch.
        ``labels()``: what the model folder stores beside the model (vocabulary, classes).
        ``card(state)``: the model card; ``test_scores(saved, data)``: scores on a test split.
        ``curves``: the panels of ``training_curves.png``, as ``render.save_curves`` takes.
    """

    curves = (("loss", (("loss", "train loss"), ("val_loss", "validation loss"))),)

    def __init__(self, out, train_config, command="", source=""):
        self.out, self.train_config = os.fspath(out), train_config
        self.command, self.source = command, source
        self.checkpoint = os.path.join(self.out, CHECKPOINT_DIR)
        self.progress = True
        self.placement = Placement()  # set by run()

    # --- hooks -------------------------------------------------------------------------
    def create_model(self):
        raise NotImplementedError

    def restore(self, model):
        pass

    def datasets(self, model):
        raise NotImplementedError

    def start_epoch(self, model, epoch):
        pass

    def compile(self, model, steps_per_epoch):
        compile_for_training(model, self.train_config, steps_per_epoch)

    def train_epoch(self, model, train, epoch, callbacks):
        """One epoch of training; returns its logs ({"loss", ...}: floats)."""
        # shuffle=False: the data shuffles itself from (seed, epoch); fit()'s own
        # shuffle draws on Python's global random state, which a resumed run cannot restore.
        logs = model.fit(self.placement.input(fit_input(train)), epochs=1, verbose=0,
                         shuffle=False, callbacks=callbacks).history
        return {key: float(values[-1]) for key, values in logs.items()}

    def scores(self, model, logs, validation):
        return {}

    def objective(self, row):
        return row.get("val_loss", row["loss"])

    def labels(self):
        raise NotImplementedError

    def card(self, state):
        raise NotImplementedError

    def test_scores(self, saved, data):
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------
    def _start(self, resume):
        state_path = os.path.join(self.checkpoint, "state.json")
        if resume and os.path.isfile(state_path):
            state = io.read_json(state_path, "training state")
            # More epochs may be asked for; anything else would not be the same run.
            before = {**TrainConfig().to_dict(), **state["train_config"]}  # older runs lack new keys
            changed = sorted(k for k, v in self.train_config.to_dict().items()
                             if before[k] != v and k not in RESUMABLE_CHANGES)
            if changed:
                raise ConfigError(f"--resume with different training settings ({', '.join(changed)}) "
                                  f"than the run in {self.out}; drop those options to continue it")
            model = load_keras_file(os.path.join(self.checkpoint, "last.keras"), compile=True)
            self.restore(model)
            print(f"resuming {self.out} after epoch {state['epoch']}", file=sys.stderr)
            if "best_objective" not in state:  # runs from before the one loop
                state["best_objective"] = (-state["best_cider"] if "best_cider" in state
                                           else state.get("best_error", float("inf")))
            return model, state, False
        if os.path.isfile(state_path):
            raise ConfigError(f"{self.out} already holds a training run: add --resume to "
                              "continue it, or choose another --out")
        return self.create_model(), {"epoch": 0, "history": [], "best_epoch": None,
                                     "best_objective": float("inf"), "wall_time": 0.0}, True

    def run(self, resume=False, progress=True, stop_after=None, callbacks=()):
        """Trains to ``train_config.epochs``; returns the history (a list of rows).

        ``callbacks``: Keras callbacks added to every epoch's ``fit()``.

        ``stop_after`` ends this call after that many epochs (the run can be resumed), as
        an interruption would. The learning-rate schedule spans ``epochs``, so resuming with
        a larger ``epochs`` continues at the schedule's final rate.
        """
        self.placement = placement(self.train_config)
        if self.placement.writes:
            os.makedirs(self.out, exist_ok=True)
        # hooks that do long work of their own show it alike (the first process only)
        self.progress = progress = progress and self.placement.writes
        with self.placement.scope:  # the model is created and laid out in it
            return self._epochs(resume, progress, stop_after, callbacks)

    def _epochs(self, resume, progress, stop_after, callbacks):
        model, state, new = self._start(resume)
        self.placement.prepare(model)
        train, validation = self.datasets(model)
        for data in (train, validation):  # each process reads its share of every batch
            if data is not None and hasattr(data, "shard"):
                data.shard = self.placement.shard
        config = self.train_config
        if new:
            self.compile(model, len(train))
        last = config.epochs if stop_after is None else min(config.epochs,
                                                            state["epoch"] + stop_after)
        for epoch in range(state["epoch"], last):
            started = time.time()
            train.set_epoch(epoch)
            reseed_layers(model, config.seed, epoch)
            self.start_epoch(model, epoch)
            bar = [ProgressBar(len(train), f"epoch {epoch + 1}/{config.epochs}")] \
                if progress else []
            logs = self.train_epoch(model, train, epoch, bar + list(callbacks))
            row = {"epoch": epoch + 1, "train_seconds": time.time() - started,
                   "loss": logs["loss"], **self.scores(model, logs, validation)}
            row["seconds"] = time.time() - started
            state["history"].append(row)
            state["wall_time"] += row["seconds"]
            objective = self.objective(row)
            improved = objective < state["best_objective"]
            if improved:
                state["best_epoch"], state["best_objective"] = epoch + 1, objective
            state.update(epoch=epoch + 1, train_config=config.to_dict(),
                         model_config=model.model_config.to_dict())
            if not self.placement.writes:
                continue
            with self.placement.alone():
                self._save(model, state, improved)
            print(f"epoch {epoch + 1}/{config.epochs}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), file=sys.stderr)
        return state["history"]

    def _save(self, model, state, improved):
        save_keras_file(model, os.path.join(self.checkpoint, "last.keras"), optimizer=True)
        if improved:
            save_model(self.out, model, self.labels(), self.card(state),
                       extra={"training": self.train_config.to_dict(), "data": self.source})
        io.write_json(os.path.join(self.out, "metrics.json"),
                      {"best_epoch": state["best_epoch"], "history": state["history"]})
        io.write_json(os.path.join(self.checkpoint, "state.json"), state)  # last: marks it done
        save_curves(os.path.join(self.out, "training_curves.png"), state["history"],
                    self.curves)

    def score_test_split(self, data, description):
        """Scores the saved best model on a test split (``test_scores``); adds the scores to
        metrics.json ("test") and to the model card, and returns them."""
        scores = self.test_scores(load_model(self.out), data)
        metrics_path = os.path.join(self.out, "metrics.json")
        metrics = io.read_json(metrics_path, "metrics file")
        metrics["test"] = scores
        io.write_json(metrics_path, metrics)
        card_path = os.path.join(self.out, CARD_FILE)
        if os.path.isfile(card_path):
            with open(card_path, encoding="utf-8") as handle:
                card = handle.read().split("\n## Test split")[0].rstrip("\n")
            io.write_text(card_path, f"{card}\n\n## Test split ({description})\n\n"
                                     f"{score_table(scores)}\n")
        return scores


def training_machine():
    """Where training ran, for the model card: "TensorFlow backend, 1 x CPU (2 cores)"."""
    import collections
    devices = collections.Counter(d.split(":")[0].upper() for d in keras.distribution.list_devices())
    names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
    return (f"{names.get(keras.backend.backend(), keras.backend.backend())} backend, "
            + ", ".join(f"{n} x {kind}" for kind, n in sorted(devices.items()))
            + f" ({os.cpu_count()} CPU cores)")


def score_table(row):
    """The float entries of ``row`` as a Markdown table."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" for key, value in row.items() if isinstance(value, float)]
    return "\n".join(lines)


def model_card(title, summary, command, details, state, selection):
    """A model card: ``title``, a ``summary`` paragraph, the command that made it, the
    ``details`` lines, and the best epoch's scores (chosen by ``selection``)."""
    best = next(row for row in state["history"] if row["epoch"] == state["best_epoch"])
    lines = [f"# {title}", "", summary, "", "## How it was made", "", "```", command, "```", ""]
    lines += [f"- {line}" for line in details] + [f"- trained on: {training_machine()}"]
    lines += [f"- this is epoch {state['best_epoch']}, the best by "
              f"{selection}",
              f"- wall time to this epoch: {state['wall_time'] / 60:.1f} min", "",
              "## Scores (best epoch)", "", score_table(best)]
    return "\n".join(lines) + "\n"
