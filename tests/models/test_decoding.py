"""Greedy search compiled whole (``CompiledGreedy``) against the eager reference search
(``captioner.search.greedy_search``), word for word."""

import os

import numpy as np
import pytest

from captioner.data.images import load_resized
from captioner.models.decoding import compiled_greedy
from captioner.saving import load_model
from captioner.search import greedy_graph, greedy_hypotheses, greedy_search
from tests.conftest import ROOT

pytestmark = pytest.mark.backend


def eager_greedy(model, vocabulary, images, max_length):
    features = model.encode(images)
    memory = model.decoder.prepare(features)
    return greedy_search(model.decoder.step, model.decoder.initial_state(memory), memory,
                         len(images), vocabulary.start_id, vocabulary.end_id, max_length)


def compiled(model, vocabulary, images, max_length):
    outputs = compiled_greedy(model, vocabulary, max_length).predict_on_batch(
        {"images": images})
    return greedy_hypotheses({key: np.asarray(value) for key, value in outputs.items()})


def assert_same(eager, graph):
    assert len(eager) == len(graph)
    for [a], [b] in zip(eager, graph):
        assert a["tokens"] == b["tokens"] and a["finished"] == b["finished"]
        np.testing.assert_allclose(b["log_probs"], a["log_probs"], atol=1e-4)
        np.testing.assert_allclose(b["alphas"], a["alphas"], atol=1e-5)
        assert b["log_prob"] == pytest.approx(a["log_prob"], abs=1e-3)


def test_the_default_model_captions_the_samples_alike():
    saved = load_model(os.path.join(ROOT, "assets", "model"))
    folder = os.path.join(ROOT, "assets", "samples")
    size = saved.model.model_config.encoder.image_size
    images = np.stack([load_resized(os.path.join(folder, name), size)
                       for name in sorted(os.listdir(folder))])
    max_length = saved.model.model_config.max_length
    eager = eager_greedy(saved.model, saved.vocabulary, images, max_length)
    assert all(h[0]["finished"] and h[0]["tokens"] for h in eager)  # real captions
    assert_same(eager, compiled(saved.model, saved.vocabulary, images, max_length))


def test_captions_that_never_end_stop_at_the_maximum_length(tiny_model, vocabulary, rng):
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)  # an untrained model
    eager = eager_greedy(tiny_model, vocabulary, images, 4)
    graph = compiled(tiny_model, vocabulary, images, 4)
    assert_same(eager, graph)
    assert any(not h[0]["finished"] and len(h[0]["tokens"]) == 4 for h in graph)


def test_the_graph_ends_each_caption_at_its_own_end():
    # a step function whose answers are known: row 0 ends at once, row 1 after two words,
    # row 2 never; the words are 5, 6, 7, ... and <end> is 2
    import keras
    from keras import ops

    def step(tokens, state, memory):
        t = state[0]
        logits = ops.one_hot(ops.minimum(t + 5, 9), 10) * 10.0
        ends = ops.one_hot(ops.full(ops.shape(tokens), 2, "int32"), 10) * 20.0
        when = ops.convert_to_tensor([0, 2, 99])[:, None]
        logits = ops.where(ops.expand_dims(t, -1) == when, ends, logits)
        return logits, [t + 1], ops.ones((3, 4)) / 4.0
    outputs = greedy_graph(step, [ops.zeros((3,), "int32")], {"annotations": ops.zeros((3, 4, 1))},
                           3, 1, 2, 3)
    result = greedy_hypotheses(keras.tree.map_structure(ops.convert_to_numpy, outputs))
    assert [h[0]["tokens"] for h in result] == [[], [5, 6], [5, 6, 7]]
    assert [h[0]["finished"] for h in result] == [True, True, False]
