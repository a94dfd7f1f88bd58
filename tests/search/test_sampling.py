"""``SamplingSampler``: its counter-based noise against the NumPy hash, and its draws
against the distribution they come from (temperature, top-k, top-p)."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.search import Controls, SamplingSampler
from captioner.search.sampling import gumbel, uniform_bits
from tests.reference_search import filtered, gumbel_noise, log_softmax

pytestmark = pytest.mark.backend

P = np.array([0.0, 0.0, 0.0, 0.4, 0.3, 0.15, 0.1, 0.05])  # <pad> <start> <end> then words
END = 2


def fixed_step(tokens, state, memory):
    """The same distribution P at every step (<end> never)."""
    with np.errstate(divide="ignore"):
        logits = ops.convert_to_tensor(np.log(np.maximum(P, 1e-30)), "float32")
    rows = ops.shape(tokens)[0]
    return ops.tile(logits[None], (rows, 1)), state, ops.ones((rows, 3)) / 3.0


def draws(sampler, images=50, seed=0, words=4):
    sampler = sampler.seeded(ops.arange(seed, seed + images))
    outputs = sampler(fixed_step, [ops.zeros((images,), "int32")],
                      {"annotations": ops.zeros((images, 3, 1))}, images, 1, END, words)
    found = sampler.hypotheses(keras.tree.map_structure(ops.convert_to_numpy, outputs))
    counts = np.zeros(len(P))
    for hypotheses in found:
        for h in hypotheses:
            np.add.at(counts, h["tokens"], 1)
    return counts / counts.sum(), found


def test_the_noise_is_the_numpy_hash_bit_for_bit():
    seeds, samples = np.array([0, 1, 2 ** 32 - 1, 77]), np.array([0, 3, 1, 0])
    bits = ops.convert_to_numpy(uniform_bits(ops.convert_to_tensor(seeds.astype("uint32")),
                                             ops.convert_to_tensor(samples), 5, 300))
    noise = ops.convert_to_numpy(gumbel(ops.convert_to_tensor(seeds.astype("uint32")),
                                        ops.convert_to_tensor(samples), 5, 300))
    for row, (seed, sample) in enumerate(zip(seeds, samples)):
        np.testing.assert_allclose(noise[row], gumbel_noise(seed, sample, 5, 300), rtol=1e-5,
                                   atol=1e-6)
    uniform = (bits >> 8) / 2 ** 24
    assert 0.45 < uniform.mean() < 0.55 and len(np.unique(bits)) == bits.size


@pytest.mark.parametrize("options", [dict(), dict(temperature=0.5), dict(temperature=2.0),
                                     dict(top_k=2), dict(top_p=0.8)],
                         ids=["plain", "cold", "hot", "top-k", "top-p"])
def test_draws_follow_the_filtered_distribution(options):
    shares, _ = draws(SamplingSampler(4, **options), images=60)  # 960 words
    with np.errstate(divide="ignore"):
        expected = np.exp(log_softmax(filtered(np.log(P), **options)))
    np.testing.assert_allclose(shares, expected, atol=0.05)
    assert np.all(shares[expected == 0] == 0)  # never outside the top k or the nucleus


def test_samples_are_listed_best_first_and_keep_the_models_log_probabilities():
    _, found = draws(SamplingSampler(5, temperature=3.0, length_penalty=1.0), images=4)
    for hypotheses in found:
        assert len(hypotheses) == 5
        scores = [h["score"] for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        for h in hypotheses:  # the model's, not the tempered distribution's
            np.testing.assert_allclose(h["log_probs"], np.log(P[h["tokens"]]), rtol=1e-5)


def test_the_same_seed_draws_the_same_words_and_controls_apply():
    a, b = draws(SamplingSampler(2), seed=5)[1], draws(SamplingSampler(2), seed=5)[1]
    assert [[h["tokens"] for h in x] for x in a] == [[h["tokens"] for h in x] for x in b]
    c = draws(SamplingSampler(2), seed=6)[1]
    assert [[h["tokens"] for h in x] for x in a] != [[h["tokens"] for h in x] for x in c]
    shares, _ = draws(SamplingSampler(2, controls=Controls(banned=(3,))))
    assert shares[3] == 0
