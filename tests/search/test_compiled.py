"""The samplers compiled whole (``CompiledSearch``, as ``ImageCaptioner.search`` keeps
them), and run eagerly as on a model laid out across devices, against the NumPy reference
searches (``tests/reference_search.py``), word for word."""

import os

import numpy as np
import pytest

from captioner.data.images import load_resized
from captioner.search import GreedySampler
from tests.conftest import ROOT
from tests.helpers import load_model, search_of
from tests.reference_search import beam_search, greedy_search

pytestmark = pytest.mark.backend


BEAMS = [dict(beam_size=1), dict(beam_size=3), dict(beam_size=3, n_best=3, length_penalty=1.0),
         dict(beam_size=5, n_best=2, min_length=12)]


def eager(model, vocabulary, images, max_length, beam_size=1, **options):
    """The reference search, under the controls every search has by default (<pad>,
    <start> and <unk> banned)."""
    from captioner.config import SearchConfig
    from captioner.search import banned_ids
    controls = dict(banned=banned_ids(SearchConfig(), vocabulary))
    memory = model.decoder.prepare(model.encode(images))
    arguments = (model.decoder.step, model.decoder.initial_state(memory, max_length + 1), memory,
                 len(images),
                 vocabulary.start_id, vocabulary.end_id, max_length)
    if beam_size == 1:
        return greedy_search(*arguments, controls)
    return beam_search(*arguments, beam_size=beam_size, controls=controls, **options)


def compiled(model, vocabulary, images, max_length, **options):
    search = search_of(model, vocabulary, max_length, **options)
    return search.hypotheses(search.predict_on_batch({"images": images}))


def graph_eagerly(model, vocabulary, images, max_length, **options):
    """The same graph called directly, as decoding runs it on a model laid out across
    devices (``ImageCaptioner.decode``)."""
    from keras import ops
    search = search_of(model, vocabulary, max_length, **options)
    outputs = search({"images": images})
    return search.hypotheses({key: ops.convert_to_numpy(v) for key, v in outputs.items()})


def assert_same(eager, graph):
    assert len(eager) == len(graph)
    for ours, theirs in zip(eager, graph):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a["tokens"] == b["tokens"] and a["finished"] == b["finished"]
            np.testing.assert_allclose(b["log_probs"], a["log_probs"], atol=1e-4)
            np.testing.assert_allclose(b["alphas"], a["alphas"], atol=1e-5)
            assert b["log_prob"] == pytest.approx(a["log_prob"], abs=1e-3)
            assert b["score"] == pytest.approx(a["score"], abs=1e-3)


@pytest.mark.parametrize("options", BEAMS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_the_default_model_captions_the_samples_alike(options):
    saved = load_model(os.path.join(ROOT, "assets", "model"))
    folder = os.path.join(ROOT, "assets", "samples")
    size = saved.model.model_config.encoder.image_size
    images = np.stack([load_resized(os.path.join(folder, name), size)
                       for name in sorted(os.listdir(folder))])
    max_length = saved.model.model_config.max_length
    reference = eager(saved.model, saved.vocabulary, images, max_length, **options)
    assert all(h[0]["finished"] and h[0]["tokens"] for h in reference)  # real captions
    assert_same(reference, compiled(saved.model, saved.vocabulary, images, max_length,
                                    **options))
    assert_same(reference, graph_eagerly(saved.model, saved.vocabulary, images, max_length,
                                         **options))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_captions_that_never_end_stop_at_the_maximum_length(tiny_model, vocabulary, rng,
                                                           beam_size):
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)  # an untrained model
    options = dict(beam_size=beam_size) if beam_size == 1 else dict(beam_size=3, n_best=2)
    reference = eager(tiny_model, vocabulary, images, 4, **options)
    graph = compiled(tiny_model, vocabulary, images, 4, **options)
    assert_same(reference, graph)
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
    sampler = GreedySampler()
    outputs = sampler(step, [ops.zeros((3,), "int32")], {"annotations": ops.zeros((3, 4, 1))},
                      3, 1, 2, 3)
    result = sampler.hypotheses(keras.tree.map_structure(ops.convert_to_numpy, outputs))
    assert [h[0]["tokens"] for h in result] == [[], [5, 6], [5, 6, 7]]
    assert [h[0]["finished"] for h in result] == [True, True, False]
