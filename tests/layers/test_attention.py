import numpy as np
import pytest

import keras
from keras import ops

from captioner.layers.attention import AdditiveAttention, get_attention, masked_softmax

pytestmark = pytest.mark.backend


def numpy_softmax(x, mask=None):
    x = np.where(mask > 0, x, -np.inf) if mask is not None else x
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make(rng, batch=3, cells=6, query_dim=5, key_dim=4, value_dim=7):
    return (rng.normal(size=(batch, query_dim)).astype("float32"),
            rng.normal(size=(batch, cells, key_dim)).astype("float32"),
            rng.normal(size=(batch, cells, value_dim)).astype("float32"))


def test_additive_matches_numpy_reference(rng):
    query, keys, values = make(rng)
    layer = AdditiveAttention(units=8)
    context, alpha = layer(query, keys, values)
    W = ops.convert_to_numpy(layer.query_projection.kernel)
    U = ops.convert_to_numpy(layer.key_projection.kernel)
    b = ops.convert_to_numpy(layer.key_projection.bias)
    v = ops.convert_to_numpy(layer.energy.kernel)[:, 0]
    scores = np.tanh((query @ W)[:, None, :] + keys @ U + b) @ v  # (batch, cells)
    expected_alpha = numpy_softmax(scores)
    np.testing.assert_allclose(ops.convert_to_numpy(alpha), expected_alpha, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(context),
                               np.einsum("bl,bld->bd", expected_alpha, values), atol=1e-5)


def test_weights_sum_to_one_and_masked_cells_get_zero(rng):
    query, keys, values = make(rng)
    mask = np.ones((3, 6), "float32")
    mask[0, :4] = 0
    mask[1, 5] = 0
    context, alpha = AdditiveAttention(units=8)(query, keys, values, mask=mask)
    alpha = ops.convert_to_numpy(alpha)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
    assert (alpha[mask == 0] == 0).all() and (alpha[mask == 1] > 0).all()
    # Context from only the unmasked cells.
    np.testing.assert_allclose(ops.convert_to_numpy(context)[0],
                               (alpha[0, 4:, None] * values[0, 4:]).sum(0), atol=1e-5)


def test_masked_softmax_of_a_fully_masked_row_is_zero():
    weights = masked_softmax(ops.ones((2, 3)), np.array([[0, 0, 0], [1, 0, 1]]))
    np.testing.assert_allclose(ops.convert_to_numpy(weights), [[0, 0, 0], [0.5, 0, 0.5]])


def test_gradients_reach_every_weight(rng):
    query, keys, values = make(rng)
    layer = AdditiveAttention(units=8)
    layer(query, keys, values)
    target = rng.normal(size=(3, 7)).astype("float32")

    def loss_of(variables):
        context, _ = layer.stateless_call(variables, [], query, keys, values)[0]
        return ops.sum((context - target) ** 2)

    if keras.backend.backend() == "jax":
        import jax
        grads = jax.grad(loss_of)([v.value for v in layer.trainable_variables])
    else:
        import tensorflow as tf
        with tf.GradientTape() as tape:
            context, _ = layer(query, keys, values)
            loss = tf.reduce_sum((context - target) ** 2)
        grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == 4
    for grad in grads:
        assert np.abs(ops.convert_to_numpy(grad)).sum() > 0


def test_config_round_trip_and_bad_arguments():
    layer = AdditiveAttention(units=5, grid_shape=(2, 3), name="att")
    clone = AdditiveAttention.from_config(layer.get_config())
    assert clone.units == 5 and clone.grid_shape == (2, 3) and clone.name == "att"
    with pytest.raises(ValueError, match="Received: score='dott'"):
        get_attention("dott", 4)
    with pytest.raises(ValueError, match="units=0"):
        AdditiveAttention(units=0)
