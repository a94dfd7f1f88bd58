"""The teacher-forced pass at the arithmetic's speed computes what the plain formulation does.

``LSTMDecoder.call`` does the words' share of the LSTM input projection for all steps
before its loop, runs its own LSTM arithmetic on the cell's weights, and runs the
recurrence as a scan or unrolled (``GridAttention.recurrence``). The reference here is the
formulation it replaces, written out step by step: ``keras.layers.LSTMCell`` called on
[E y; z] at every word, the deep output per word.
"""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.models.captioner import create_captioner
from captioner.models.losses import doubly_stochastic_penalty, token_losses
from tests.conftest import tiny_config

pytestmark = pytest.mark.backend

SCORES = ["additive", "general", "multihead", "local"]


def reference_pass(decoder, tokens, features):
    """{"logits", "alphas"} of the step-by-step formulation."""
    memory = decoder.prepare(features)
    state = decoder.initial_state(memory)
    logits, alphas = [], []
    for t in range(tokens.shape[1]):
        embedded = decoder.embedding(tokens[:, t])
        hidden = state[0]
        query = decoder.query_to_keys(hidden) if hasattr(decoder, "query_to_keys") else hidden
        context, alpha = decoder.attention(query, memory["annotations"],
                                           prepared_keys=memory["keys"])
        context = decoder.gate(hidden) * context
        output, state = decoder.lstm(ops.concatenate([embedded, context], -1), state)
        deep = ops.tanh(embedded + decoder.output_h(output) + decoder.output_z(context))
        logits.append(decoder.logits(deep))
        alphas.append(alpha)
    return {"logits": ops.stack(logits, 1), "alphas": ops.stack(alphas, 1)}


def loss(outputs, targets, mask):
    """The captioner's loss (cross-entropy per word + the doubly stochastic penalty)."""
    return (ops.sum(token_losses(targets, outputs["logits"], mask)) / ops.sum(mask)
            + doubly_stochastic_penalty(outputs["alphas"], mask))


def loss_and_gradients(decoder, run, tokens, features, targets, mask):
    """The loss of ``run(tokens, features)`` and its gradients for the decoder's weights."""
    variables = decoder.trainable_variables
    if keras.backend.backend() == "jax":
        import jax

        def loss_of(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss(run(tokens, features), targets, mask)

        value, grads = jax.value_and_grad(loss_of)([v.value for v in variables])
        return float(value), [np.asarray(g) for g in grads]
    import tensorflow as tf
    with tf.GradientTape() as tape:
        value = loss(run(tokens, features), targets, mask)
    return float(value), [ops.convert_to_numpy(g) for g in tape.gradient(value, variables)]


@pytest.fixture(scope="module")
def data(vocabulary):
    rng = np.random.default_rng(3)
    tokens = rng.integers(4, len(vocabulary), (3, 7)).astype("int32")
    targets = rng.integers(4, len(vocabulary), (3, 7)).astype("int32")
    mask = np.ones((3, 7), "float32")
    mask[0, 4:] = 0.0
    features = rng.normal(size=(3, 16, 32)).astype("float32")
    return tokens, features, targets, mask


@pytest.mark.parametrize("score", SCORES)
def test_both_recurrences_compute_the_plain_formulation(vocabulary, data, score):
    tokens, features, targets, mask = data
    model = create_captioner(tiny_config(vocabulary, score=score), seed=3)
    decoder = model.decoder
    expected, expected_grads = loss_and_gradients(
        decoder, lambda t, f: reference_pass(decoder, t, f), tokens, features, targets, mask)
    outputs = {}
    for recurrence in ("unrolled", "scan"):
        decoder.recurrence = recurrence
        assert decoder._scanned(tokens, training=True) == (recurrence == "scan")
        value, grads = loss_and_gradients(decoder, lambda t, f: decoder(t, f, training=True),
                                          tokens, features, targets, mask)
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        for variable, grad, expected_grad in zip(decoder.trainable_variables, grads,
                                                 expected_grads):
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6,
                                       err_msg=variable.path)
        outputs[recurrence] = decoder(tokens, features)
    reference = reference_pass(decoder, tokens, features)
    for recurrence, result in outputs.items():
        for key in ("logits", "alphas"):
            np.testing.assert_allclose(ops.convert_to_numpy(result[key]),
                                       ops.convert_to_numpy(reference[key]), atol=1e-5,
                                       err_msg=f"{recurrence} {key}")


def test_each_score_chooses_its_recurrence(vocabulary, data):
    """Scores with a (batch, L, units) energy run unrolled, the others as a scan; hard
    attention's training pass, whose draws advance the seed state, never scans."""
    tokens = data[0]
    chosen = {}
    for score in ("additive", "concat", "general", "scaled_dot", "multihead", "local"):
        decoder = create_captioner(tiny_config(vocabulary, score=score), seed=0).decoder
        chosen[score] = decoder._scanned(tokens, training=True)
    assert chosen == {"additive": False, "concat": False, "general": True, "scaled_dot": True,
                      "multihead": True, "local": True}
    hard = create_captioner(tiny_config(vocabulary, score="general", attention="hard"),
                            seed=0).decoder
    assert not hard._scanned(tokens, training=True)
    assert hard._scanned(tokens, training=False)


def test_each_cell_gets_its_row_vector_plus_its_column_vector(vocabulary, data):
    _, features, _, _ = data
    model = create_captioner(tiny_config(vocabulary), seed=0)
    decoder = model.decoder
    assert decoder.decoder_config.positions == "axes"
    rows = ops.convert_to_numpy(decoder.row_positions)[:, 0]        # (H, D)
    columns = ops.convert_to_numpy(decoder.column_positions)[0]     # (W, D)
    height, width = decoder.grid_shape
    expected = features + np.stack([rows[r] + columns[c] for r in range(height)
                                    for c in range(width)])[None]
    annotations = ops.convert_to_numpy(decoder.prepare(features)["annotations"])
    np.testing.assert_allclose(annotations, expected, rtol=1e-6, atol=1e-6)
