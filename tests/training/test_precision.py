"""Mixed precision (``TrainConfig.dtype_policy``): a bfloat16 run learns as the float32 one
does, float16 trains with loss scaling, and a model trained in either loads and captions
in float32."""

import keras
import numpy as np
import pytest

from captioner.models.base import dtype_policy, resolve_dtype_policy
from tests.helpers import load_model
from tests.training.test_captioning import make_trainer

pytestmark = pytest.mark.backend

EPOCHS = 4
# stated distance: the per-epoch training loss of a bfloat16 run within 2 % of float32's
# (measured here: at most 0.2 % on TensorFlow over 4 epochs); bfloat16 keeps 8 bits of mantissa
LOSS_DISTANCE = 0.02


def run(synthetic_coco, out, policy):
    trainer = make_trainer(synthetic_coco, out, EPOCHS)
    trainer.train_config.dtype_policy = policy
    return [row["loss"] for row in trainer.run(progress=False)]


@pytest.mark.slow  # two several-epoch runs
def test_a_bfloat16_run_follows_the_float32_loss_curve_and_loads_as_float32(
        synthetic_coco, tmp_path):
    full = run(synthetic_coco, tmp_path / "float32", "float32")
    half = run(synthetic_coco, tmp_path / "bfloat16", "mixed_bfloat16")
    assert half[-1] < 0.9 * half[0]  # it learns
    np.testing.assert_allclose(half, full, rtol=LOSS_DISTANCE)
    assert keras.config.dtype_policy().name == "float32"  # the run's policy did not leak
    saved = load_model(tmp_path / "bfloat16")  # trained in bfloat16, loaded in float32
    assert {layer.dtype_policy.name for layer in saved.model._flatten_layers()} == {"float32"}
    with dtype_policy("mixed_bfloat16"):  # and the other way round
        again = load_model(tmp_path / "float32")
        assert again.model.decoder.compute_dtype == "bfloat16"
    import os

    from captioner.tasks import load
    test = os.path.join(synthetic_coco, "test2017")
    captions = load(tmp_path / "bfloat16").caption(
        [os.path.join(test, name) for name in sorted(os.listdir(test))[:3]])
    assert all(result.best.words for result in captions)
    for a, b in zip(saved.model.get_weights(), load(tmp_path / "bfloat16").model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # a training run and its reload
def test_float16_trains_with_loss_scaling(synthetic_coco, tmp_path):
    trainer = make_trainer(synthetic_coco, tmp_path / "float16", 1)
    trainer.train_config.dtype_policy = "mixed_float16"
    history = trainer.run(progress=False)
    assert np.isfinite(history[0]["loss"])
    from captioner.saving import load_keras_file
    from captioner.training.checkpoint import latest_model_path
    with dtype_policy("mixed_float16"):
        model = load_keras_file(latest_model_path(tmp_path / "float16"), compile=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_auto_is_float32_on_cpus():
    assert resolve_dtype_policy("auto") == "float32"  # the test machines have no GPU
    assert resolve_dtype_policy("mixed_float16") == "mixed_float16"
