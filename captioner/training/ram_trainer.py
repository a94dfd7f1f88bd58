"""Training the Recurrent Attention Model, with the captioner's machinery: ``fit()`` one
epoch at a time with a progress bar, validation error, checkpoints and exact resume.

Output folder::

    OUT/model.keras, config.json, MODEL_CARD.md   the best epoch (validation error)
    OUT/metrics.json, training_curves.png         one row per epoch
    OUT/checkpoint/last.keras, state.json         the last epoch, with optimizer

The batches are a pure function of (seed, epoch) and every SeedGenerator is reset from
(seed, epoch) before each epoch, so a resumed run ends with the same weights.
"""

import os
import sys
import time

import keras

from captioner import io
from captioner.config import RamConfig
from captioner.errors import ConfigError
from captioner.models.captioner import load_keras_file
from captioner.models.ram import create_ram, save_ram_dir
from captioner.render import save_error_curves
from captioner.training.progress import ProgressBar
from captioner.training.trainer import CHECKPOINT_DIR, compile_for_training, reseed_layers


def classification_error(model, batches):
    """Share of wrong answers (deterministic glimpses: the policy's mean) over ``batches``."""
    wrong = total = 0
    for index in range(len(batches)):
        images, labels = batches[index]
        logits = keras.ops.convert_to_numpy(model.predict_on_batch(images)["logits"])
        wrong += int((logits.argmax(-1) != labels).sum())
        total += len(labels)
    return wrong / max(total, 1)


class RamTrainer:
    """Trains a RAM on ``train`` batches (``set_epoch``-able PyDatasets), validating on
    ``val``, into ``out``. ``classes``: the class names; ``source``: for the model card."""

    def __init__(self, train, val, out, ram_config, train_config, classes, source="",
                 command=""):
        self.train, self.val, self.out = train, val, out
        self.ram_config, self.train_config = ram_config, train_config
        self.classes, self.source, self.command = list(classes), source, command
        self.checkpoint = os.path.join(out, CHECKPOINT_DIR)

    def _start(self, resume):
        state_path = os.path.join(self.checkpoint, "state.json")
        if resume and os.path.isfile(state_path):
            state = io.read_json(state_path, "training state")
            changed = sorted(k for k, v in self.train_config.to_dict().items()
                             if state["train_config"].get(k) != v and k != "epochs")
            if changed:
                raise ConfigError(f"--resume with different training settings ({', '.join(changed)}) "
                                  f"than the run in {self.out}; drop those options to continue it")
            self.ram_config = RamConfig.from_dict(state["model_config"])
            print(f"resuming {self.out} after epoch {state['epoch']}", file=sys.stderr)
            return load_keras_file(os.path.join(self.checkpoint, "last.keras"), compile=True), state
        if os.path.isfile(state_path):
            raise ConfigError(f"{self.out} already holds a training run: add --resume to "
                              "continue it, or choose another --out")
        model = create_ram(self.ram_config, seed=self.train_config.seed)
        compile_for_training(model, self.train_config, len(self.train))
        return model, {"epoch": 0, "history": [], "best_epoch": None, "best_error": 2.0,
                       "wall_time": 0.0}

    def run(self, resume=False, progress=True, stop_after=None):
        os.makedirs(self.out, exist_ok=True)
        model, state = self._start(resume)
        config = self.train_config
        last = config.epochs if stop_after is None else min(config.epochs, state["epoch"] + stop_after)
        for epoch in range(state["epoch"], last):
            started = time.time()
            self.train.set_epoch(epoch)
            reseed_layers(model, config.seed, epoch)
            callbacks = [ProgressBar(len(self.train), f"epoch {epoch + 1}/{config.epochs}")] \
                if progress else []
            logs = model.fit(self.train, epochs=1, verbose=0, shuffle=False,
                             callbacks=callbacks).history
            row = {"epoch": epoch + 1, "train_seconds": time.time() - started,
                   "loss": float(logs["loss"][-1]),
                   "train_error": 1.0 - float(logs["accuracy"][-1]),
                   "baseline_error": float(logs["baseline_error"][-1])}
            if self.val is not None:
                row["val_error"] = classification_error(model, self.val)
            row["seconds"] = time.time() - started
            state["history"].append(row)
            state["wall_time"] += row["seconds"]
            improved = row.get("val_error", row["train_error"]) < state["best_error"]
            if improved:
                state["best_epoch"] = epoch + 1
                state["best_error"] = row.get("val_error", row["train_error"])
            state.update(epoch=epoch + 1, train_config=config.to_dict(),
                         model_config=self.ram_config.to_dict())
            self._save(model, state, improved)
            print(f"epoch {epoch + 1}/{config.epochs}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), file=sys.stderr)
        return state["history"]

    def _card(self, state):
        best = next(r for r in state["history"] if r["epoch"] == state["best_epoch"])
        c = self.ram_config
        return "\n".join([
            "# Recurrent Attention Model", "",
            f"- data: {self.source}", f"- classes: {', '.join(self.classes)}",
            f"- input: {c.height}x{c.width}x{c.channels}; {c.glimpses} glimpses of {c.scales} "
            f"scales, {c.patch}x{c.patch} each; location sigma {c.location_std}; reward "
            f"{c.reward}",
            f"- best epoch {state['best_epoch']} of {len(state['history'])}: validation error "
            f"{best.get('val_error', float('nan')):.4f}",
            f"- training time: {state['wall_time'] / 60:.1f} min", f"- command: `{self.command}`",
            ""])

    def _save(self, model, state, improved):
        with io.atomic_path(os.path.join(self.checkpoint, "last.keras")) as temporary:
            model.save(temporary)
        if improved:
            save_ram_dir(model, self.classes, self.out, self._card(state),
                         extra_config={"training": self.train_config.to_dict(),
                                       "data": self.source})
        io.write_json(os.path.join(self.out, "metrics.json"),
                      {"best_epoch": state["best_epoch"], "history": state["history"]})
        io.write_json(os.path.join(self.checkpoint, "state.json"), state)  # last: marks it done
        save_error_curves(os.path.join(self.out, "training_curves.png"), state["history"])

