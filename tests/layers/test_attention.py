"""The attention family: each member against a NumPy implementation of its formula, masks,
gradients, and the limits that relate members to each other."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.layers.attention import (
    ATTENTION_LAYERS,
    AdditiveAttention,
    GeneralAttention,
    LocalAttention,
    MultiHeadGridAttention,
    ScaledDotAttention,
    get_attention,
    masked_softmax,
)
from tests.helpers import run_layer_test

pytestmark = pytest.mark.backend

GRID = (2, 3)  # L = 6 cells
NAMES = sorted(ATTENTION_LAYERS)


def numpy_softmax(x, mask=None):
    x = np.where(mask > 0, x, -np.inf) if mask is not None else x
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make(rng, name=None, batch=3, query_dim=5, key_dim=4, value_dim=7):
    if name in ("dot", "scaled_dot"):
        query_dim = key_dim  # these compare the query with each key
    return (rng.normal(size=(batch, query_dim)).astype("float32"),
            rng.normal(size=(batch, GRID[0] * GRID[1], key_dim)).astype("float32"),
            rng.normal(size=(batch, GRID[0] * GRID[1], value_dim)).astype("float32"))


def weights(variable):
    return ops.convert_to_numpy(variable)


def reference(layer, query, keys, values, mask):
    """(context, alpha) by the layer's formula in NumPy, from the layer's own weights."""
    if isinstance(layer, MultiHeadGridAttention):
        mha = layer.attention
        q = np.einsum("bd,dhk->bhk", query, weights(mha.query_dense.kernel)) \
            + weights(mha.query_dense.bias)
        k = np.einsum("bld,dhk->blhk", keys, weights(mha.key_dense.kernel)) \
            + weights(mha.key_dense.bias)
        v = np.einsum("bld,dhk->blhk", values, weights(mha.value_dense.kernel)) \
            + weights(mha.value_dense.bias)
        heads = numpy_softmax(np.einsum("bhk,blhk->bhl", q, k) / np.sqrt(q.shape[-1]),
                              mask[:, None, :])  # (batch, heads, L)
        mixed = np.einsum("bhl,blhk->bhk", heads, v)
        context = np.einsum("bhk,hkd->bd", mixed, weights(mha.output_dense.kernel)) \
            + weights(mha.output_dense.bias)
        return context, heads.mean(1)
    name = {cls: key for key, cls in ATTENTION_LAYERS.items()}[type(layer)]
    if name == "additive":
        hidden = np.tanh((query @ weights(layer.query_projection.kernel))[:, None]
                         + keys @ weights(layer.key_projection.kernel)
                         + weights(layer.key_projection.bias))
        scores = hidden @ weights(layer.energy.kernel)[:, 0]
    elif name == "dot":
        scores = np.einsum("bd,bld->bl", query, keys)
    elif name == "scaled_dot":
        scores = np.einsum("bd,bld->bl", query, keys) / np.sqrt(keys.shape[-1])
    elif name == "concat":
        pairs = np.concatenate([np.repeat(query[:, None], keys.shape[1], 1), keys], -1)
        scores = np.tanh(pairs @ weights(layer.kernel)) @ weights(layer.energy)
    else:  # general, and local's aligned scores
        scores = np.einsum("bq,qk,blk->bl", query, weights(layer.kernel), keys)
    if name != "local":
        alpha = numpy_softmax(scores, mask)
        return np.einsum("bl,bld->bd", alpha, values), alpha
    # local-p: p = (H, W) * sigmoid(v_p^T tanh(W_p q)); cell centres at (i + .5, j + .5)
    p = np.array(GRID) / (1 + np.exp(-np.tanh(query @ weights(layer.position_hidden.kernel))
                                     @ weights(layer.position.kernel)))
    rows, cols = np.meshgrid(np.arange(GRID[0]) + 0.5, np.arange(GRID[1]) + 0.5, indexing="ij")
    d_row = rows.ravel()[None] - p[:, :1]
    d_col = cols.ravel()[None] - p[:, 1:]
    inside = (np.abs(d_row) <= layer.window) & (np.abs(d_col) <= layer.window) \
        if layer.window_truncate else np.ones_like(d_row, bool)
    inside = inside & (mask > 0)
    gaussian = np.exp(-(d_row ** 2 + d_col ** 2) / (2 * (layer.window / 2) ** 2))
    alpha = numpy_softmax(scores, inside) * gaussian  # Luong: aligned scores x window
    if layer.normalize:
        alpha = alpha / alpha.sum(-1, keepdims=True)
    return np.einsum("bl,bld->bd", alpha, values), alpha


def member(name, **options):
    if name == "local_unnormalised":
        return LocalAttention(units=8, grid_shape=GRID, window=1.0, normalize=False)
    if name == "local_truncated":
        return LocalAttention(units=8, grid_shape=GRID, window=1.0, window_truncate=True)
    if name == "local":
        options.setdefault("window", 1.0)  # narrower than the grid: the window matters
    return get_attention(name, 8, GRID, options)


def a_mask(batch=3):
    mask = np.ones((batch, GRID[0] * GRID[1]), "float32")
    mask[0, :4] = 0
    mask[1, 5] = 0
    return mask


@pytest.mark.parametrize("name", NAMES + ["local_unnormalised", "local_truncated"])
def test_member_matches_its_numpy_formula(rng, name):
    query, keys, values = make(rng, name)
    layer = member(name)
    for mask in (np.ones((3, 6), "float32"), a_mask()):
        context, alpha = layer(query, keys, values, mask=mask)
        expected_context, expected_alpha = reference(layer, query, keys, values, mask)
        np.testing.assert_allclose(ops.convert_to_numpy(alpha), expected_alpha, atol=1e-5)
        np.testing.assert_allclose(ops.convert_to_numpy(context), expected_context, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_weights_sum_to_one_and_masked_cells_get_zero(rng, name):
    query, keys, values = make(rng, name)
    mask = a_mask()
    context, alpha = member(name)(query, keys, values, mask=mask)
    alpha = ops.convert_to_numpy(alpha)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-5)
    assert (alpha[mask == 0] == 0).all()
    if name != "multihead":  # its context is a projection of the heads' contexts
        np.testing.assert_allclose(ops.convert_to_numpy(context)[0],
                                   (alpha[0, 4:, None] * values[0, 4:]).sum(0), atol=1e-5)


def test_masked_softmax_of_a_fully_masked_row_is_zero():
    weights = masked_softmax(ops.ones((2, 3)), np.array([[0, 0, 0], [1, 0, 1]]))
    np.testing.assert_allclose(ops.convert_to_numpy(weights), [[0, 0, 0], [0.5, 0, 0.5]])


def gradients(layer, query, keys, values, target):
    if keras.backend.backend() == "jax":
        import jax

        def loss_of(variables):
            context, _ = layer.stateless_call(variables, [], query, keys, values)[0]
            return ops.sum((context - target) ** 2)

        return jax.grad(loss_of)([v.value for v in layer.trainable_variables])
    import tensorflow as tf
    with tf.GradientTape() as tape:
        context, _ = layer(query, keys, values)
        loss = tf.reduce_sum((context - target) ** 2)
    return tape.gradient(loss, layer.trainable_variables)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_weight(rng, name):
    query, keys, values = make(rng, name)
    layer = member(name)
    layer(query, keys, values)
    expected_count = {"dot": 0, "scaled_dot": 0, "general": 1, "concat": 2, "additive": 4,
                      "multihead": 8, "local": 3}[name]
    assert len(layer.trainable_variables) == expected_count
    grads = gradients(layer, query, keys, values, rng.normal(size=(3, 7)).astype("float32"))
    for variable, grad in zip(layer.trainable_variables, grads):
        assert np.abs(ops.convert_to_numpy(grad)).sum() > 0, variable.path


def test_one_head_with_identity_projections_is_scaled_dot_product(rng):
    query, keys, values = make(rng, "dot", key_dim=4, value_dim=4)
    layer = MultiHeadGridAttention(units=4, heads=1)
    layer(query, keys, values)
    mha = layer.attention
    for dense in (mha.query_dense, mha.key_dense, mha.value_dense):
        dense.kernel.assign(np.eye(4, dtype="float32").reshape(4, 1, 4))
        dense.bias.assign(np.zeros((1, 4), "float32"))
    mha.output_dense.kernel.assign(np.eye(4, dtype="float32").reshape(1, 4, 4))
    mha.output_dense.bias.assign(np.zeros(4, "float32"))
    mask = a_mask()
    context, alpha, heads = layer(query, keys, values, mask=mask, return_heads=True)
    expected_context, expected_alpha = ScaledDotAttention()(query, keys, values, mask=mask)
    np.testing.assert_allclose(ops.convert_to_numpy(alpha), ops.convert_to_numpy(expected_alpha),
                               atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(heads)[:, 0], ops.convert_to_numpy(alpha))
    np.testing.assert_allclose(ops.convert_to_numpy(context),
                               ops.convert_to_numpy(expected_context), atol=1e-5)


def test_multihead_exposes_each_heads_map(rng):
    query, keys, values = make(rng)
    _, alpha, heads = MultiHeadGridAttention(units=8, heads=4)(query, keys, values,
                                                               return_heads=True)
    heads = ops.convert_to_numpy(heads)
    assert heads.shape == (3, 4, 6)
    np.testing.assert_allclose(heads.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(heads.mean(1), ops.convert_to_numpy(alpha), atol=1e-6)
    assert np.abs(heads[:, 0] - heads[:, 1]).max() > 1e-3  # the heads look differently


@pytest.mark.parametrize("normalize", [True, False])
def test_local_with_a_very_wide_window_is_its_global_score(rng, normalize):
    query, keys, values = make(rng)
    local = LocalAttention(units=8, grid_shape=GRID, window=1e4, normalize=normalize)
    general = GeneralAttention(units=8)
    local(query, keys, values)
    general(query, keys, values)
    general.kernel.assign(local.kernel)
    for a, b in zip(local(query, keys, values), general(query, keys, values)):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-5)


def test_local_window_follows_the_predicted_centre(rng):
    """Truncated, cells more than D from the centre get nothing; the centre stays on the
    grid."""
    query, keys, values = make(rng, batch=64)
    layer = LocalAttention(units=8, grid_shape=GRID, window=0.5, window_truncate=True)
    _, alpha = layer(query, keys, values)
    centre = ops.convert_to_numpy(layer.centre(query))
    assert (centre >= 0).all() and (centre <= np.array(GRID)).all()
    alpha = ops.convert_to_numpy(alpha).reshape(64, *GRID)
    for weights_, (row, col) in zip(alpha, centre):
        nearest = (min(int(row), GRID[0] - 1), min(int(col), GRID[1] - 1))
        assert weights_[nearest] > 0  # the cell under the centre is always inside
        for i, j in zip(*np.nonzero(weights_)):
            assert abs(i + 0.5 - row) <= 0.5 and abs(j + 0.5 - col) <= 0.5


@pytest.mark.parametrize("name", NAMES)
def test_each_layer_round_trips_and_is_registered(rng, name):
    run_layer_test(member(name), *make(rng, name))


def test_bad_arguments_are_clear_errors(rng):
    with pytest.raises(ValueError, match="Received: score='dott'"):
        get_attention("dott", 4)
    with pytest.raises(ValueError, match="units=0"):
        AdditiveAttention(units=0)
    with pytest.raises(ValueError, match="heads=3"):
        MultiHeadGridAttention(units=8, heads=3)
    with pytest.raises(ValueError, match="grid_shape"):
        LocalAttention(units=8)
    with pytest.raises(ValueError, match="window=0.1"):
        LocalAttention(units=8, grid_shape=GRID, window=0.1)
    query, keys, values = make(rng)  # query size 5, key size 4
    with pytest.raises(ValueError, match="query size 5, key size 4"):
        get_attention("dot", 4)(query, keys, values)


def test_the_registry_has_one_layer_for_each_score_the_config_offers():
    from captioner.config import attention_scores
    assert list(ATTENTION_LAYERS) == list(attention_scores())
