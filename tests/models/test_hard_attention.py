"""Hard attention: it learns to look at the one cell that holds the answer, saves, loads,
and draws the same samples from the same seed."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.config import ModelConfig
from captioner.data.vocab import SPECIAL_TOKENS, Vocabulary
from captioner.models.captioner import create_captioner
from captioner.training.loop import reseed_layers
from tests.helpers import assert_round_trip, decode_batch

pytestmark = pytest.mark.backend

CLASSES, CELLS, DIM = 4, 4, 8  # 16 px -> a 2x2 grid of 8 features (small CNN, width 2)
VOCABULARY = Vocabulary(list(SPECIAL_TOKENS) + [f"class{k}" for k in range(CLASSES)])


def hard_config(**decoder):
    config = ModelConfig.from_dict({
        "encoder": {"image_size": 16, "width": 2, "fine_tune": False},  # fed features
        "decoder": {"embedding_dim": 16, "lstm_units": 32, "attention_units": 16,
                    "dropout": 0.0, "attention": "hard", "doubly_stochastic": 0.0, **decoder},
        "vocab_size": 4 + CLASSES, "max_length": 1})
    return config


def cell_task(count, seed):
    """Each grid cell shows a class (one-hot); the marked cell (feature 4 = 1) is the
    answer. The caption is that one word: only a model that looks there can say it."""
    rng = np.random.default_rng(seed)
    features = np.zeros((count, CELLS, DIM), np.float32)
    features[:, :, :CLASSES] = np.eye(CLASSES)[rng.integers(CLASSES, size=(count, CELLS))]
    features[:, :, 5:] = rng.normal(0, 0.3, (count, CELLS, DIM - 5))
    answer_cell = rng.integers(CELLS, size=count)
    features[np.arange(count), answer_cell, 4] = 1.0
    answer = features[np.arange(count), answer_cell, :CLASSES].argmax(-1)
    tokens = np.stack([np.ones(count), 4 + answer], 1).astype(np.int32)  # <start> word
    targets = np.stack([4 + answer, np.full(count, 2)], 1).astype(np.int32)  # word <end>
    return {"features": features, "tokens": tokens}, targets, np.ones_like(targets, np.float32), \
        answer, answer_cell


@pytest.mark.parametrize("rate, credit", [
    (0.5, "caption"), pytest.param(0.0, "to_go", marks=pytest.mark.slow)],
    ids=["paper", "pure-reinforce"])
def test_hard_attention_learns_where_the_answer_is(rate, credit):
    """With the paper's recipe (half the steps get the expected context, each cell is
    judged by the caption's cost), and with no expected contexts at all: then only
    REINFORCE can teach the attention where to look."""
    model = create_captioner(hard_config(expected_context_rate=rate, credit=credit), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y, w, _, _ = cell_task(512, seed=0)
    history = model.fit(x, y, sample_weight=w, batch_size=64, epochs=40, verbose=0).history
    assert ops.convert_to_numpy(model.baseline) > 0  # the moving average follows the cost
    assert history["nll"][-1] < 0.5 * history["nll"][0]
    x, _, _, answer, answer_cell = cell_task(256, seed=1)
    hypotheses = decode_batch(model, VOCABULARY, features=x["features"])  # argmax: one cell
    said = np.array([h[0]["tokens"][0] if h[0]["tokens"] else -1 for h in hypotheses])
    looked = np.array([h[0]["alphas"][0].argmax() for h in hypotheses])
    assert np.mean(said == 4 + answer) > 0.95
    assert np.mean(looked == answer_cell) > 0.95


def test_same_seed_same_samples_and_save_load(tmp_path):
    model = create_captioner(hard_config(), seed=3)
    x, _, _, _, _ = cell_task(16, seed=2)
    draws = []
    for _ in range(2):
        reseed_layers(model, seed=5, epoch=0)
        draws.append(ops.convert_to_numpy(model(x, training=True)["log_policy"]))
    np.testing.assert_array_equal(draws[0], draws[1])
    reseed_layers(model, seed=6, epoch=0)
    other = ops.convert_to_numpy(model(x, training=True)["log_policy"])
    assert not np.array_equal(other, draws[0])
    loaded = assert_round_trip(model, x, tmp_path)  # inference (argmax) outputs equal
    assert loaded.model_config.decoder.attention == "hard"
    reseed_layers(loaded, seed=5, epoch=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x, training=True)["log_policy"]),
                                  draws[0])


def test_hard_training_outputs_the_policy_terms():
    model = create_captioner(hard_config(expected_context_rate=0.0), seed=1)
    x, _, _, _, _ = cell_task(8, seed=3)
    outputs = model(x, training=True)
    log_policy = ops.convert_to_numpy(outputs["log_policy"])
    alphas = ops.convert_to_numpy(outputs["alphas"])
    assert log_policy.shape == (8, 2) and (log_policy < 0).all()  # every step sampled
    # each log-probability is that of one of the cells under alpha
    matches = np.isclose(np.exp(log_policy)[:, :, None], alphas, atol=1e-5)
    assert matches.any(-1).all()
    entropy = ops.convert_to_numpy(outputs["entropy"])
    np.testing.assert_allclose(entropy, -(alphas * np.log(alphas)).sum(-1), rtol=1e-4)
    assert "log_policy" not in model(x, training=False)
