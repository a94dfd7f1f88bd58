"""The one checkpointed epoch loop: every model kind trains through it.

``fit()`` runs one epoch at a time with a progress bar; after each epoch the loop scores
the model, picks the best epoch, writes the epoch's checkpoint as one unit, and then
publishes it (``captioner.training.run_folder``: the best epoch's model folder,
metrics.json, the curves). At the last epoch the best model is made complete inside the
same checkpoint: its test scores and what the task adds at the end (the captioner's domain
summary), with a model card rendered from that state (``captioner.training.card``).

A kill at any moment leaves a complete checkpoint (the previous epoch's or the new one);
what OUT publishes is rewritten from it when the run resumes. ``resume=True`` verifies the
checkpoint (file digests, epoch, optimizer step, random state, training data) and
continues from it exactly: the weights, the optimizer's state (moments, step count, hence
the learning rate), the epoch, every layer's random state (reset from (seed, epoch) before
each epoch) and the data order, which the data sets draw from (seed, epoch) themselves.
While a run writes, OUT/.lock keeps a second process from training into the same folder. A model
kind plugs in through the hooks of
:class:`EpochLoop`: a new model, its data, its validation columns, its objective, its
model card and curves.
"""

import contextlib
import math
import os
import sys
import time

import keras
import numpy as np

from captioner import folders, io
from captioner.config import TrainConfig, legacy
from captioner.errors import ConfigError, OutputError
from captioner.models.base import dtype_policy
from captioner.saving import load_keras_file, save_keras_file
from captioner.tasks import load
from captioner.training import card
from captioner.training.checkpoint import CHECKPOINT_DIR, MODEL, CheckpointError, Checkpoints
from captioner.training.distribution import Placement, placement
from captioner.training.progress import ProgressBar
from captioner.training.run_folder import publish


def _seed_generators(model):
    return [g for layer in model._flatten_layers() for g in layer._seed_generators]


def random_state(model, seed, epoch):
    """The states ``reseed_layers`` gives ``model``'s random generators at ``epoch``, as
    lists (what a checkpoint records, and a resumed run checks)."""
    return [[seed * 1009 + index, epoch] for index in range(len(_seed_generators(model)))]


def reseed_layers(model, seed, epoch):
    """Sets every layer's random state (dropout masks, sampled cells and locations) from
    (seed, epoch, layer).

    A .keras file does not store SeedGenerator states, so without this a resumed run would
    draw other random numbers than the uninterrupted one.
    """
    for generator, values in zip(_seed_generators(model), random_state(model, seed, epoch)):
        generator.state.assign(np.array(values, dtype=generator.state.dtype))


def fit_input(batches):
    """What ``fit()`` takes from a data set of the loop: its ``fit_input()`` (a tf.data
    pipeline, say) where it has one, else the PyDataset itself."""
    return batches.fit_input() if hasattr(batches, "fit_input") else batches


def compile_for_training(model, config, steps_per_epoch):
    """Adam with gradient clipping and a cosine decay of the learning rate over the run
    (``config``: a TrainConfig; its rate, or the model's decoder's default)."""
    rate = config.learning_rate_of(model.model_config)
    schedule = keras.optimizers.schedules.CosineDecay(
        rate, decay_steps=config.run.epochs * steps_per_epoch,
        alpha=min(config.min_learning_rate / rate, 1.0))
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm))


class EpochLoop:
    """Trains a model into ``out`` (see the module docstring).

    Subclasses implement the hooks:
        ``create_model()``: a new, built model (a new run); may write files to ``out``.
        ``restore(model, folder)``: a resumed run; read back the labels the checkpoint
            ``folder`` holds (``Task.save_labels``).
        ``datasets(model)``: (train, validation or None), PyDatasets with ``set_epoch``
            (and ``fit_input()`` where ``fit()`` should get something else, a tf.data
            pipeline of the epoch).
        ``start_epoch(model, epoch)``: per-epoch settings (optional).
        ``compile(model, steps_per_epoch)``, ``train_epoch(model, train, epoch,
            callbacks)``: the optimizer, and one epoch's steps (by default ``fit()``).
        ``scores(model, logs, validation)``: the epoch's row beyond loss and times.
        ``objective(row)``: lower is better; picks the best epoch.
        ``task(model)``: the task object of the model (``captioner.tasks``), which saves
            the model folder with its labels (vocabulary, classes).
        ``card(state)``: what the model card says (a ``card.CardFacts``).
        ``complete(task)``: what the end of the run adds to the best model (optional).
        ``test_scores(task)``: (scores, description) on the test split, or None.
        ``run_files()``: {file name: JSON data} OUT publishes beside the model (optional).
        ``curves``: the panels of ``training_curves.png``, as ``render.save_curves`` takes.
    """

    curves = (("loss", (("loss", "train loss"), ("val_loss", "validation loss"))),)

    def __init__(self, out, train_config, command="", source=""):
        self.out, self.train_config = os.fspath(out), train_config
        self.command, self.source = command, source
        # what the run was asked to do (a RunRecord), kept in each checkpoint so that
        # `captioner train --resume OUT` needs nothing else
        self.record = None
        self.checkpoint = os.path.join(self.out, CHECKPOINT_DIR)
        self.progress = True
        self.placement = Placement()  # set by run()

    # --- hooks -------------------------------------------------------------------------
    def create_model(self):
        raise NotImplementedError

    def restore(self, model, folder):
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

    def task(self, model):
        raise NotImplementedError

    def card(self, state):
        raise NotImplementedError

    def complete(self, task):
        pass

    def test_scores(self, task):
        return None

    def run_files(self):
        return {}

    # --- the loop ----------------------------------------------------------------------
    def data_fingerprint(self):
        """A hash of the training data (hook): a resumed run refuses other data. None: not
        checked."""
        return None

    def _start(self, resume):
        checkpoints = Checkpoints(self.checkpoint)
        if checkpoints.exists() and not resume:
            raise ConfigError(f"{self.out} already holds a training run: add --resume to "
                              "continue it, or choose another --out")
        found = checkpoints.latest() if resume else None
        if found is None:
            if resume:
                print(f"no complete checkpoint in {self.out}: training from the start",
                      file=sys.stderr)
            return self.create_model(), {"epoch": 0, "history": [], "best_epoch": None,
                                         "best_objective": float("inf"), "wall_time": 0.0}, True
        folder, state = found
        # More epochs may be asked for; anything else would not be the same run.
        # the sections TrainConfig.RESUMABLE may change; older runs' flat dicts lack new keys
        changed = self.train_config.changed_on_resume(
            TrainConfig.from_dict(state["train_config"], f"{self.out}'s training config"))
        if changed:
            before = TrainConfig.from_dict(state["train_config"]).flat()
            now = self.train_config.flat()
            raise ConfigError(
                "--resume cannot change "
                f"{', '.join(f'{name} ({before[name]} -> {now[name]})' for name in changed)} "
                f"of the run in {self.out}: `captioner train --resume {self.out}` continues it "
                "with its own settings (a resume may change only the run's length, the input "
                "and the devices)")
        model = load_keras_file(checkpoints.model_path(folder), compile=True)
        self.restore(model, folder)
        checked = self._verify(model, state, folder)
        print(f"resuming {self.out} from epoch {state['epoch']} of {self.train_config.run.epochs} "
              f"(checkpoint {os.path.relpath(folder, self.out)}: {checked})", file=sys.stderr)
        legacy.checkpoint_state(state)  # runs from before the one loop
        if self.placement.writes:
            with self.placement.alone():
                # what a kill after the checkpoint missed
                publish(self.out, checkpoints.best_folder(), state, self.curves)
        return model, state, False

    def _verify(self, model, state, folder):
        """Checks a loaded checkpoint against its state; returns what was checked, for the
        user. CheckpointError where the optimizer's step, the random state or the data
        disagree (the files and the epoch were checked by ``Checkpoints.latest``)."""
        checked = []
        if "files" in state:
            count = len(state["files"])
            checked.append(f"{count} file{'s' if count > 1 else ''} match their SHA-256")
        if "optimizer_iterations" in state:
            step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
            if step != state["optimizer_iterations"]:
                raise CheckpointError(f"Checkpoint {folder}: the optimizer is at step {step}, "
                                      f"the state says {state['optimizer_iterations']}")
            checked.append(f"optimizer step {step}")
        if "random_state" in state:
            expected = random_state(model, self.train_config.seed, state["epoch"])
            if expected != state["random_state"]:
                raise CheckpointError(f"Checkpoint {folder}: the model's random generators "
                                      "and seed do not match the state's")
            checked.append(f"random state of {len(expected)} generators, seed "
                           f"{self.train_config.seed}")
        fingerprint = self.data_fingerprint()
        if state.get("data") and fingerprint and state["data"] != fingerprint:
            raise CheckpointError(f"--resume on other training data than the run in "
                                  f"{self.out} was trained on (images or captions changed)")
        if state.get("data") and fingerprint:
            checked.append("same training data")
        return ", ".join(checked) or "single-file format, unverified"

    def run(self, resume=False, progress=True, stop_after=None, callbacks=()):
        """Trains to ``train_config.run.epochs``; returns the history (a list of rows).

        ``callbacks``: Keras callbacks added to every epoch's ``fit()``.

        ``stop_after`` ends this call after that many epochs (the run can be resumed), as
        an interruption would. The learning-rate schedule spans ``epochs``, so resuming with
        a larger ``epochs`` continues at the schedule's final rate.
        """
        self.placement = placement(self.train_config)
        lock = contextlib.ExitStack()
        if self.placement.writes:
            with io.refused_writes(self.out):
                os.makedirs(self.out, exist_ok=True)
                folders.mark(self.out, "run")
            try:  # OUT/.lock: a second process training into the same folder is refused
                lock.enter_context(io.file_lock(os.path.join(self.out, ".lock"), wait=False))
            except BlockingIOError:
                raise ConfigError(f"another process is training into {self.out}") from None
        # hooks that do long work of their own show it alike (the first process only)
        self.progress = progress = progress and self.placement.writes
        # the model is created (or loaded) in the run's precision and laid out in place
        with lock, dtype_policy(self.train_config.dtype_policy), self.placement.scope:
            if self.placement.writes:  # what killed writes left
                io.remove_partials(self.out)
                Checkpoints(self.checkpoint).prune()
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
        last = config.run.epochs if stop_after is None else min(config.run.epochs,
                                                            state["epoch"] + stop_after)
        for epoch in range(state["epoch"], last):
            started = time.time()
            train.set_epoch(epoch)
            reseed_layers(model, config.seed, epoch)
            self.start_epoch(model, epoch)
            bar = [ProgressBar(len(train), f"epoch {epoch + 1}/{config.run.epochs}")] \
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
                         model_config=model.model_config.to_dict(),
                         machine=card.training_machine(), run_files=self.run_files())
            state.pop("invocation", None)  # older runs' record of their command line
            if self.record is not None:
                state["record"] = self.record.to_dict()
            if not self.placement.writes:
                continue
            with self.placement.alone():
                self._save(model, state, improved, final=epoch + 1 == config.run.epochs)
            print(f"epoch {epoch + 1}/{config.run.epochs}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items()
                if isinstance(v, float) and not math.isnan(v)), file=sys.stderr)
        return state["history"]

    def _save(self, model, state, improved, final=False):
        """Writes the epoch's checkpoint as one unit (``captioner.training.checkpoint``),
        then publishes it (``run_folder.publish``). ``final``: the run's last epoch, whose
        checkpoint holds the best model made complete (``_complete``)."""
        checkpoints = Checkpoints(self.checkpoint)
        state.update(optimizer_iterations=int(keras.ops.convert_to_numpy(
                         model.optimizer.iterations)),
                     random_state=random_state(model, self.train_config.seed, state["epoch"]),
                     data=self.data_fingerprint())
        best = self._complete(model, state, improved, checkpoints) if final else (
            self.task(model) if improved else None)

        def write_model(folder):
            save_keras_file(model, os.path.join(folder, MODEL), optimizer=True)
            self.task(model).save_labels(folder)

        def write_best(folder):
            best.save(folder, card.render(self.card(state), state), {
                "training": {**self.train_config.to_dict(), "epoch": state["best_epoch"]},
                "data": self.source})
        try:
            checkpoints.write(state["epoch"], state, write_model,
                              write_best if best is not None else None)
        except OutputError as error:
            kept = checkpoints.latest()
            raise OutputError(f"{error}; the checkpoint of epoch {kept[1]['epoch']} in "
                              f"{self.checkpoint} is intact (--resume continues from it)"
                              if kept else f"{error}; no checkpoint was written") from None
        publish(self.out, checkpoints.best_folder(), state, self.curves,
                model_changed=best is not None)

    def _complete(self, model, state, improved, checkpoints):
        """The best model at the run's last epoch (this epoch's, or loaded from its
        checkpoint), with what the end of the run adds (``complete``) and its test scores
        in ``state`` ("test", "test_description")."""
        task = self.task(model) if improved else load(checkpoints.best_folder())
        self.complete(task)
        tested = self.test_scores(task)
        if tested is not None:
            state["test"], state["test_description"] = tested
        return task
