"""Sampling, diverse beam search and the controls, compiled (``ImageCaptioner.search``)
against the NumPy reference searches (``tests/reference_search.py``), hypothesis for
hypothesis, on the bundled LSTM (soft attention), an LSTM with hard attention and a
Transformer decoding with its cache."""

import dataclasses
import os

import numpy as np
import pytest

from captioner.config import ModelConfig, SearchConfig, TransformerConfig
from captioner.data.images import load_resized
from captioner.search import banned_ids
from captioner.tasks import ImageCaptioner
from tests.conftest import ROOT, tiny_config
from tests.helpers import load_model
from tests.reference_search import beam_search, greedy_search, sampled_search
from tests.search.test_compiled import assert_same

pytestmark = pytest.mark.backend

SEARCHES = {
    "sample3-top-p-no-repeat": SearchConfig(samples=3, top_p=0.8, temperature=1.3, seed=11,
                                            no_repeat_ngram=2),
    "sample2-top-k-penalty": SearchConfig(samples=2, top_k=4, seed=3, repetition_penalty=1.6,
                                          length_penalty=1.0),
    "diverse4x2-ban": SearchConfig(beam=4, beam_groups=2, n_best=4, diversity=1.0,
                                   ban=("picture",)),
    "diverse6x3": pytest.param(SearchConfig(beam=6, beam_groups=3, n_best=2, diversity=3.0,
                               length_penalty=0.7), marks=pytest.mark.slow),
    "greedy-controls": pytest.param(SearchConfig(no_repeat_ngram=2, repetition_penalty=1.8,
                                                 min_length=3), marks=pytest.mark.slow),
    "beam3-no-repeat": SearchConfig(beam=3, n_best=2, no_repeat_ngram=3, min_length=2),
}


def reference(task, images, config, seeds):
    """The reference search of ``config`` (a ``SearchConfig``) on ``images``."""
    model, vocabulary = task.model, task.vocabulary
    config = task.search_config(config)
    memory = model.decoder.prepare(model.encode(images))
    arguments = (model.decoder.step, model.decoder.initial_state(memory, config.max_length + 1),
                 memory, len(images), vocabulary.start_id, vocabulary.end_id, config.max_length)
    controls = dict(banned=banned_ids(config, vocabulary),
                    no_repeat_ngram=config.no_repeat_ngram,
                    repetition_penalty=config.repetition_penalty)
    if config.sampling:
        return sampled_search(*arguments, seeds, config.samples, config.temperature, config.top_k,
                              config.top_p, config.length_penalty,
                              {**controls, "min_length": config.min_length})
    if config.beam == 1:
        return greedy_search(*arguments, {**controls, "min_length": config.min_length})
    return beam_search(*arguments, config.beam, config.n_best, config.length_penalty,
                       config.min_length, config.beam_groups, config.diversity, controls)


def compiled(task, images, config, seeds):
    search = task.search(config)
    inputs = {"images": images}
    if search.draws:
        inputs["seed"] = np.asarray(seeds, "uint32")
    return search.hypotheses(search.predict_on_batch(inputs))


def samples(count=2):
    folder = os.path.join(ROOT, "assets", "samples")
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:count]]


@pytest.fixture(scope="module")
def bundled():
    saved = load_model(os.path.join(ROOT, "assets", "model"))
    return ImageCaptioner(saved.model, saved.vocabulary)


@pytest.mark.parametrize("config", SEARCHES.values(), ids=SEARCHES)
def test_the_bundled_model_searches_as_the_reference(bundled, config):
    size = bundled.model.model_config.encoder.image_size
    images = np.stack([load_resized(path, size) for path in samples()])
    config = dataclasses.replace(config, grounded=0.0)
    seeds = [config.seed, config.seed + 1]
    expected = reference(bundled, images, config, seeds)
    assert all(len(found) == config.captions or config.beam_groups > 1 for found in expected)
    assert_same(expected, compiled(bundled, images, config, seeds))


def untrained(kind, vocabulary):
    from captioner.models.captioner import create_captioner
    if kind == "hard":
        config = tiny_config(vocabulary, attention="hard")
    else:
        decoder = TransformerConfig(layers=1, encoder_layers=0, model_width=32, ff_width=64,
                                    heads=2)
        config = ModelConfig(decoder=decoder, vocab_size=len(vocabulary),
                             vocab_hash=vocabulary.hash, max_length=8)
    return ImageCaptioner(create_captioner(config, seed=5), vocabulary)


@pytest.mark.slow  # two untrained models, four compiled searches
@pytest.mark.parametrize("kind", ["hard", "transformer"])
def test_hard_attention_and_the_transformer_cache_search_as_the_reference(kind, vocabulary,
                                                                          rng):
    task = untrained(kind, vocabulary)
    size = task.model.model_config.encoder.image_size
    images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    for config in (SearchConfig(samples=2, top_p=0.9, no_repeat_ngram=2, seed=9),
                   SearchConfig(beam=4, beam_groups=2, n_best=3, repetition_penalty=2.0)):
        assert_same(reference(task, images, config, [9, 10]),
                    compiled(task, images, config, [9, 10]))


def test_a_seed_gives_the_same_captions_in_any_batch_and_another_seed_others(bundled):
    paths = samples(3)
    config = SearchConfig(samples=4, temperature=1.5, seed=21)

    def texts(found):
        return [[" ".join(c.words) for c in image.n_best] for image in found]
    together = texts(bundled.caption(paths, config))
    alone = texts(bundled.caption(paths[1:2], config))
    assert together[1] == alone[0] and together == texts(bundled.caption(paths, config))
    assert texts(bundled.caption(paths, dataclasses.replace(config, seed=22))) != together
    assert all(len(captions) == 4 for captions in together)
    assert len({c for captions in together for c in captions}) > len(paths)  # they vary


@pytest.mark.parametrize("config", [SearchConfig(beam=3, n_best=3, max_length=3),
                                    SearchConfig(beam=4, beam_groups=2, n_best=4)],
                         ids=["beam3-unfinished", "diverse4x2"])
def test_ranking_reads_the_lowest_float_as_no_score_as_it_reads_minus_infinity(bundled,
                                                                               config):
    """A converter may write the constant -inf as the lowest float (LiteRT's does): the
    ranking in the graph (what an export returns) must not take it for a score."""
    from keras import ops

    from captioner.search.sampler import LOWEST
    size = bundled.model.model_config.encoder.image_size
    images = np.stack([load_resized(path, size) for path in samples()])
    search = bundled.search(dataclasses.replace(config, grounded=0.0))
    outputs = search.predict_on_batch({"images": images})
    empty = sum(int(np.sum(np.isneginf(value))) for value in outputs.values()
                if value.dtype.kind == "f")
    assert empty  # an empty place in a pool or beam, for the test to mean something
    lowest = {key: np.where(np.isneginf(value), LOWEST, value) if value.dtype.kind == "f"
              else value for key, value in outputs.items()}
    expected, found = (
        {key: ops.convert_to_numpy(value) for key, value in search.sampler.ranked(
            {key: ops.convert_to_tensor(value) for key, value in fields.items()}).items()}
        for fields in (outputs, lowest))
    assert np.all(np.isfinite(expected["scores"]) == (expected["scores"] > LOWEST))
    for key in expected:
        np.testing.assert_array_equal(found[key], expected[key], err_msg=key)
