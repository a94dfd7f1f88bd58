"""The one epoch loop, through the RAM's hooks (the captioner's are in test_captioning.py):
exact resume, the best epoch by the objective, and the files it writes."""

import json

import keras
import numpy as np
import pytest

from captioner.config import RAMConfig, TrainConfig
from captioner.data.classification import digit_splits, load_digits
from captioner.errors import ConfigError
from captioner.saving import load_keras_file
from captioner.training.checkpoint import latest_model_path
from captioner.training.ram import RAMTrainer
from tests.helpers import load_model

pytestmark = pytest.mark.backend


def make_trainer(out, epochs, **training):
    digits, labels = load_digits("sklearn")
    train, val, _ = digit_splits(digits[:200], labels[:200], canvas=28, batch_size=64, seed=5)
    config = RAMConfig(height=28, width=28, classes=10, glimpses=2, patch=6, scales=2,
                       glimpse_hidden=16, glimpse_units=32, core_units=32, seed=5)
    return RAMTrainer(train, val, str(out), config,
                      TrainConfig.of(epochs=epochs, batch_size=64, seed=5, **training),
                      [str(k) for k in range(10)], "sklearn digits")


@pytest.mark.slow  # exact resume: .ci/run's slow pass (and the JAX pass)
def test_a_ram_run_resumes_exactly_and_keeps_its_best_epoch(tmp_path):
    straight = make_trainer(tmp_path / "straight", 2).run(progress=False)
    make_trainer(tmp_path / "split", 2).run(progress=False, stop_after=1)
    resumed = make_trainer(tmp_path / "split", 2).run(resume=True, progress=False)
    assert [row["loss"] for row in resumed] == pytest.approx([r["loss"] for r in straight],
                                                            abs=1e-6)
    weights = [load_keras_file(latest_model_path(tmp_path / run)).get_weights()
               for run in ("straight", "split")]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    errors = [row["val_error"] for row in metrics["history"]]
    assert metrics["best_epoch"] == 1 + int(np.argmin(errors))  # the first of the lowest
    saved = load_model(tmp_path / "split")
    assert saved.kind == "ram" and saved.classes == [str(k) for k in range(10)]
    card = (tmp_path / "split" / "MODEL_CARD.md").read_text()
    assert f"this is epoch {metrics['best_epoch']}, the best by validation error" in card
    assert (tmp_path / "split" / "training_curves.png").stat().st_size > 10_000


def test_resume_refuses_other_training_settings_and_a_second_start(tmp_path):
    make_trainer(tmp_path, 1).run(progress=False)
    with pytest.raises(ConfigError, match=r"cannot change learning_rate \(.* -> 0.1\)"
                       r".*--resume .* continues it with its own settings"):
        make_trainer(tmp_path, 2, learning_rate=0.1).run(resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a training run"):
        make_trainer(tmp_path, 1).run(progress=False)


class GrowingCaptions(keras.utils.PyDataset):
    """Caption-like batches whose time axis grows only after the first several."""

    lengths = (3,) * 12 + (7, 5)

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, index):
        steps = self.lengths[index]
        tokens = np.full((4, steps), index % 5 + 1, np.int32)
        regions = np.full((4, steps, 2), 0.5, np.float32)
        return ({"tokens": tokens, "regions": regions}, tokens, np.ones((4, steps), np.float32))


@pytest.mark.backend
def test_python_batches_may_grow_longer_than_the_first_ones():
    """Keras' PyDataset adapter on TensorFlow fixes the shapes of the first batches it
    peeks at; the loop hands it a tf.data pipeline with a free time axis instead."""
    from captioner.config import TrainConfig
    from captioner.training.distribution import placement
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    regions = keras.Input((None, 2), name="regions")
    hidden = keras.layers.Embedding(8, 4)(tokens)
    hidden = keras.layers.Concatenate()([hidden, regions])
    model = keras.Model({"tokens": tokens, "regions": regions}, keras.layers.Dense(8)(hidden))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(placement(TrainConfig()).input(GrowingCaptions()), epochs=1,
                        shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
