"""The replica helpers on one device: the draws they make are the ones asked for. (Their
behaviour across replicas is checked by training on 4 virtual devices, see
tests/training/test_distribution.py.)"""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.models import replicas

pytestmark = pytest.mark.backend


def test_one_device_is_one_replica_and_sums_are_plain():
    assert replicas.replica() == (0, 1)
    assert float(replicas.global_sum(ops.convert_to_tensor(3.0))) == 3.0
    assert float(replicas.tracked(ops.convert_to_tensor(1.5))) == 1.5
    assert not replicas.laid_out()


def test_gumbel_max_draws_follow_the_softmax():
    probabilities = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    log_p = np.where(probabilities > 0, np.log(np.maximum(probabilities, 1e-30)), -1e9)
    rows = 20000
    drawn = ops.convert_to_numpy(replicas.categorical(
        ops.convert_to_tensor(np.tile(log_p, (rows, 1)).astype("float32")),
        keras.random.SeedGenerator(7)))
    frequencies = np.bincount(drawn, minlength=5) / rows
    # binomial standard error at p = 0.5 and 20,000 draws is 0.0035: 4 of them
    np.testing.assert_allclose(frequencies, probabilities, atol=0.014)
    assert frequencies[4] == 0.0  # a cell of probability 0 is never drawn


def test_the_draw_advances_its_generator():
    seed = keras.random.SeedGenerator(3)
    first = ops.convert_to_numpy(replicas.draw(keras.random.uniform, (4, 2), seed))
    second = ops.convert_to_numpy(replicas.draw(keras.random.uniform, (4, 2), seed))
    assert first.shape == (4, 2) and not np.array_equal(first, second)


def test_dropout_keeps_the_mean_and_drops_its_rate():
    layer = replicas.Dropout(0.25, seed=1)
    inputs = np.ones((400, 50), "float32")
    dropped = ops.convert_to_numpy(layer(inputs, training=True))
    np.testing.assert_allclose(np.unique(dropped), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs((dropped == 0).mean() - 0.25) < 0.01  # 20,000 units: 3 standard errors
    assert np.array_equal(ops.convert_to_numpy(layer(inputs, training=False)), inputs)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, replicas.Dropout) and restored.rate == 0.25
