"""``RandomSampler``: greedy search over the log-probabilities plus the caller's Gumbel
noise, so each word is a draw from the model's distribution."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.search import GreedySampler, RandomSampler

pytestmark = pytest.mark.backend

VOCAB, END = 6, 2


def step(tokens, state, memory):
    """The same distribution at every step: p(word) fixed, <end> (2) unlikely."""
    logits = ops.convert_to_tensor(np.log([0.05, 0.05, 0.01, 0.5, 0.3, 0.09]), "float32")
    return ops.tile(logits[None], (ops.shape(tokens)[0], 1)), state, ops.ones((3, 4)) / 4.0


def run(sampler, steps=4):
    outputs = sampler(step, [ops.zeros((3,), "int32")], {"annotations": ops.zeros((3, 4, 1))},
                      3, 1, END, steps)
    return sampler.hypotheses(keras.tree.map_structure(ops.convert_to_numpy, outputs))


def test_without_noise_it_is_greedy():
    noise = np.zeros((3, 5, VOCAB), np.float32)
    sampled, greedy = run(RandomSampler(ops.convert_to_tensor(noise))), run(GreedySampler())
    for a, b in zip(sampled, greedy):
        assert a[0]["tokens"] == b[0]["tokens"] == [3, 3, 3, 3]
        np.testing.assert_array_equal(a[0]["log_probs"], b[0]["log_probs"])


def test_noise_picks_the_word_and_the_log_probabilities_stay_the_models():
    noise = np.zeros((3, 5, VOCAB), np.float32)
    noise[0, :, 4] = 10.0           # image 0 writes word 4 every time
    noise[1, 1, END] = 10.0         # image 1 ends after one word
    found = run(RandomSampler(ops.convert_to_tensor(noise)))
    assert found[0][0]["tokens"] == [4, 4, 4, 4] and not found[0][0]["finished"]
    np.testing.assert_allclose(found[0][0]["log_probs"], np.log(0.3) * np.ones(4), rtol=1e-5)
    assert found[1][0]["tokens"] == [3] and found[1][0]["finished"]
    assert found[1][0]["log_prob"] == pytest.approx(np.log(0.5) + np.log(0.01), rel=1e-5)
    assert found[2][0]["tokens"] == [3, 3, 3, 3]


def test_gumbel_draws_follow_the_distribution():
    counts = np.zeros(VOCAB)
    for seed in range(40):
        draws = np.random.default_rng(seed).gumbel(size=(3, 5, VOCAB)).astype(np.float32)
        draws[:, :, END] = -1e9  # no <end>: four words each
        for hypotheses in run(RandomSampler(ops.convert_to_tensor(draws))):
            np.add.at(counts, hypotheses[0]["tokens"], 1)
    shares = counts / counts.sum()  # 480 words against p renormalised without <end>
    expected = np.array([0.05, 0.05, 0.0, 0.5, 0.3, 0.09]) / 0.99
    np.testing.assert_allclose(shares, expected, atol=0.06)
