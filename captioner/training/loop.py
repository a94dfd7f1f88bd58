"""The one checkpointed epoch loop: every model kind trains through it.

``fit()`` runs one epoch at a time with a progress bar; after each epoch the loop scores
the model, picks the best epoch, writes the epoch's checkpoint as one unit, and then
publishes it, each file atomically::

    OUT/checkpoint/epoch-NNNN/, latest.json                  the checkpoint (see
                                                             ``captioner.training.checkpoint``)
    OUT/model.keras, config.json, MODEL_CARD.md (+ labels)   the best epoch's model folder
    OUT/metrics.json                                         one row per epoch (+ "test")
    OUT/training_curves.png                                  the curves of those rows

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
import os
import sys
import time

import keras
import numpy as np

from captioner import io
from captioner.config import TrainConfig
from captioner.errors import ConfigError, OutputError
from captioner.models.base import dtype_policy
from captioner.render import save_curves
from captioner.saving import CARD_FILE, CONFIG_FILE, load_keras_file, save_keras_file
from captioner.tasks import load
from captioner.training.checkpoint import CHECKPOINT_DIR, CheckpointError, Checkpoints
from captioner.training.distribution import Placement, placement
from captioner.training.progress import ProgressBar


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
        ``restore(model)``: a resumed run; read back what ``create_model`` wrote.
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
        ``card(state)``: the model card; ``test_scores(task, data)``: scores on a test split.
        ``curves``: the panels of ``training_curves.png``, as ``render.save_curves`` takes.
    """

    curves = (("loss", (("loss", "train loss"), ("val_loss", "validation loss"))),)

    def __init__(self, out, train_config, command="", source=""):
        self.out, self.train_config = os.fspath(out), train_config
        self.command, self.source = command, source
        # the command line that started the run ({"cwd", "argv"}), kept in each checkpoint
        # so that `captioner train --resume OUT` needs nothing else
        self.invocation = None
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

    def task(self, model):
        raise NotImplementedError

    def card(self, state):
        raise NotImplementedError

    def test_scores(self, task, data):
        raise NotImplementedError

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
        self.restore(model)
        checked = self._verify(model, state, folder)
        print(f"resuming {self.out} from epoch {state['epoch']} of {self.train_config.run.epochs} "
              f"(checkpoint {os.path.relpath(folder, self.out)}: {checked})", file=sys.stderr)
        if "best_objective" not in state:  # runs from before the one loop
            state["best_objective"] = (-state["best_cider"] if "best_cider" in state
                                       else state.get("best_error", float("inf")))
        if self.placement.writes:
            with self.placement.alone():
                self._publish(state, checkpoints)  # what a kill after the checkpoint missed
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
                         model_config=model.model_config.to_dict())
            if self.invocation is not None:
                state["invocation"] = self.invocation
            if not self.placement.writes:
                continue
            with self.placement.alone():
                self._save(model, state, improved)
            print(f"epoch {epoch + 1}/{config.run.epochs}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), file=sys.stderr)
        return state["history"]

    def _save(self, model, state, improved):
        """Writes the epoch's checkpoint as one unit (``captioner.training.checkpoint``),
        then publishes it: the best model folder, metrics.json and the curves in OUT."""
        checkpoints = Checkpoints(self.checkpoint)
        state.update(optimizer_iterations=int(keras.ops.convert_to_numpy(
                         model.optimizer.iterations)),
                     random_state=random_state(model, self.train_config.seed, state["epoch"]),
                     data=self.data_fingerprint())

        def write_best(folder):
            self.task(model).save(folder, self.card(state), {
                "training": {**self.train_config.to_dict(), "epoch": state["best_epoch"]},
                "data": self.source})
        try:
            checkpoints.write(state["epoch"], state,
                              lambda path: save_keras_file(model, path, optimizer=True),
                              write_best if improved else None)
        except OutputError as error:
            kept = checkpoints.latest()
            raise OutputError(f"{error}; the checkpoint of epoch {kept[1]['epoch']} in "
                              f"{self.checkpoint} is intact (--resume continues from it)"
                              if kept else f"{error}; no checkpoint was written") from None
        self._publish(state, checkpoints, improved)

    def _publish(self, state, checkpoints, model_changed=True):
        """OUT's files from the checkpoint: the best model folder (copied, config.json last),
        metrics.json, training_curves.png; each atomically, all rewritable after a kill."""
        best = checkpoints.best_folder()
        if model_changed and best is not None:
            names = sorted(os.listdir(best), key=lambda name: name == CONFIG_FILE)
            for name in names:
                io.copy_file(os.path.join(best, name), os.path.join(self.out, name))
        io.write_json(os.path.join(self.out, "metrics.json"),
                      {"best_epoch": state["best_epoch"], "history": state["history"]})
        save_curves(os.path.join(self.out, "training_curves.png"), state["history"],
                    self.curves)

    def score_test_split(self, data, description):
        """Scores the saved best model on a test split (``test_scores``); adds the scores to
        metrics.json ("test") and to the model card, and returns them."""
        scores = self.test_scores(load(self.out), data)
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
    devices = collections.Counter(d.split(":")[0].upper()
                                  for d in keras.distribution.list_devices())
    names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
    return (f"{names.get(keras.backend.backend(), keras.backend.backend())} backend, "
            + ", ".join(f"{n} x {kind}" for kind, n in sorted(devices.items()))
            + f" ({os.cpu_count()} CPU cores)")


def score_table(row):
    """The float entries of ``row`` as a Markdown table."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" for key, value in row.items() if isinstance(value, float)]
    return "\n".join(lines)


def model_card(title, summary, command, details, state, selection, sections=()):
    """A model card: ``title``, a ``summary`` paragraph, ``sections`` ((heading, its
    lines) each: what it is for, its limitations), the command that made it, the
    ``details`` lines, and the best epoch's scores (chosen by ``selection``)."""
    best = next(row for row in state["history"] if row["epoch"] == state["best_epoch"])
    lines = [f"# {title}", "", summary, ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    lines += ["## How it was made", "", "```", command, "```", ""]
    lines += [f"- {line}" for line in details] + [f"- trained on: {training_machine()}"]
    lines += [f"- this is epoch {state['best_epoch']}, the best by "
              f"{selection}",
              f"- wall time to this epoch: {state['wall_time'] / 60:.1f} min", "",
              "## Scores (best epoch)", "", score_table(best)]
    return "\n".join(lines) + "\n"
