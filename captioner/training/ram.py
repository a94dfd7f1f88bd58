"""Training the Recurrent Attention Model: the epoch loop's hooks for a glimpse classifier
(``captioner.training.run.train_ram`` runs it).

Validation after each epoch: the classification error with deterministic glimpses (the
policy's mean), which picks the best epoch. The class names are saved in config.json.
"""

import sys

import keras

from captioner.models.ram import create_ram
from captioner.tasks import RAMClassifier
from captioner.training.card import CardFacts
from captioner.training.loop import EpochLoop


def classification_error(model, batches):
    """Share of wrong answers (deterministic glimpses: the policy's mean) over ``batches``.

    The model is called once per batch, not through ``predict_on_batch``: under
    ``tf.distribute`` that would run the whole batch on every replica."""
    wrong = total = 0
    for index in range(len(batches)):
        images, labels = batches[index][:2]  # training batches add weights
        logits = keras.ops.convert_to_numpy(model(images, training=False)["logits"])
        wrong += int((logits.argmax(-1) != labels).sum())
        total += len(labels)
    return wrong / max(total, 1)


class RAMTrainer(EpochLoop):
    """Trains a RAM on ``train`` batches (``set_epoch``-able PyDatasets), validating on
    ``val``, into ``out``; scores the best model on ``test`` at the end. ``classes``: the
    class names; ``source``: for the model card."""

    curves = (
        ("loss", (("loss", "train loss"),)),
        ("classification error", (("train_error", "train (sampled glimpses)"),
                                  ("val_error", "validation"))),
    )

    def __init__(self, train, val, out, model_config, train_config, classes, source="",
                 command="", test=None):
        super().__init__(out, train_config, command, source)
        self.train, self.val, self.test = train, val, test
        self.model_config, self.classes = model_config, list(classes)

    def create_model(self):
        return create_ram(self.model_config, seed=self.train_config.seed)

    def restore(self, model, folder):
        self.model_config = model.model_config

    def datasets(self, model):
        return self.train, self.val

    def scores(self, model, logs, validation):
        row = {"train_error": 1.0 - logs["accuracy"], "baseline_error": logs["baseline_error"]}
        if validation is not None:
            row["val_error"] = classification_error(model, validation)
        return row

    def objective(self, row):
        return row.get("val_error", row["train_error"])

    def task(self, model):
        return RAMClassifier(model, self.classes)

    def card(self, state):
        c = self.model_config
        return CardFacts(
            "Recurrent Attention Model",
            f"Classifies {c.height}x{c.width}x{c.channels} images from {c.glimpses} glimpses "
            "(Mnih et al. 2014).", self.command,
            [f"data: {self.source}", f"classes: {', '.join(self.classes)}",
             f"retina: {c.scales} scales of {c.patch}x{c.patch}; location sigma "
             f"{c.location_std}; reward {c.reward}"],
            "validation error" if self.val is not None else "training error")

    def test_scores(self, task):
        if self.test is None:
            return None
        images = len(self.test.labels)
        scores = {"error": classification_error(task.model, self.test), "images": images}
        print(f"test error {100 * scores['error']:.2f}% ({images} images)", file=sys.stderr)
        return scores, f"{images} images"


RamTrainer = RAMTrainer  # its name in 0.4, kept for one release
