"""``Ensemble``: members' next-word distributions averaged in probability space, their maps
averaged on the first member's grid; an ensemble of a model with itself is that model."""

import os

import numpy as np
import pytest
from keras import ops

from captioner.config import SearchConfig
from captioner.data.images import load_resized
from captioner.errors import ModelError
from captioner.tasks import ImageCaptioner
from tests.conftest import ROOT, tiny_config

pytestmark = pytest.mark.backend


def captioner_of(vocabulary, seed, image_size=None):
    from captioner.models.captioner import create_captioner
    config = tiny_config(vocabulary)
    if image_size:
        config.encoder.image_size = image_size
    return ImageCaptioner(create_captioner(config, seed=seed), vocabulary)


def test_the_step_is_the_mean_of_the_members_probabilities_and_maps(vocabulary, rng):
    first, second = captioner_of(vocabulary, 1), captioner_of(vocabulary, 2, image_size=64)
    both = ImageCaptioner.ensemble([first, second])
    assert first.grid_shape != second.grid_shape  # the second's maps are resized
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    memory = both.model.decoder.prepare(both.model.encode(images))
    state = both.model.decoder.initial_state(memory, 5)
    tokens = ops.convert_to_tensor(np.array([1, 5, 7], "int32"))
    log_probs, _, alpha = (ops.convert_to_numpy(x) if i != 1 else x for i, x in
                           enumerate(both.model.decoder.step(tokens, state, memory)))
    probabilities, maps = [], []
    for i, member in enumerate((first, second)):
        own = member.model.decoder.prepare(both.model.encode(images)[i])
        logits, _, own_alpha = member.model.decoder.step(
            tokens, member.model.decoder.initial_state(own, 5), own)
        logits = ops.convert_to_numpy(logits).astype(np.float64)
        probabilities.append(np.exp(logits - logits.max(-1, keepdims=True)))
        probabilities[-1] /= probabilities[-1].sum(-1, keepdims=True)
        maps.append(ops.convert_to_numpy(own_alpha))
    np.testing.assert_allclose(log_probs, np.log(np.mean(probabilities, 0)), atol=1e-5)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-5)
    # the first member's maps count half, on its own grid
    resized = 2 * alpha - maps[0]
    np.testing.assert_allclose(resized.sum(-1), 1.0, atol=1e-4)
    assert alpha.shape == maps[0].shape


def test_grounded_decoding_re_scores_each_member_by_its_own_head_before_the_mean(
        synthetic_coco, vocabulary, rng):
    """Under grounded decoding an ensemble's step is log(mean_m p_m), p_m each member's own
    grounded step (its head, its grid, its statement words) renormalised; a member without
    a head counts with its plain step."""
    from captioner.data.coco import load_coco_split
    from captioner.data.regions import grounding_config
    from captioner.models.captioner import create_captioner
    from captioner.search.grounded import GroundedDecoder
    boxes = load_coco_split(synthetic_coco, "train")[1]
    members = []
    for seed, size, head in ((1, None, True), (2, 64, True), (3, None, False)):
        config = tiny_config(vocabulary)
        if size:
            config.encoder.image_size = size
        if head:
            config.grounding = grounding_config(boxes, vocabulary)
        members.append(ImageCaptioner(create_captioner(config, seed=seed), vocabulary))
    both = ImageCaptioner.ensemble(members)
    search = both.search(SearchConfig())
    assert search.grounded > 0  # on by default, as for a member with a head
    words = both.statement_words()
    assert len(words) == 3 and words[0] and words[1] and not words[2]
    assert len(words[1][0].places) != len(words[0][0].places)  # the second's own grid
    decoder = both.model.grounded_decoder(2.0, words)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    features = both.model.encode(images)
    memory = decoder.prepare(features)
    tokens = ops.convert_to_tensor(np.array([1, 5, 7], "int32"))
    log_probs = ops.convert_to_numpy(decoder.step(tokens, decoder.initial_state(memory, 5),
                                                  memory)[0])
    probabilities = []
    for member, own, scorers in zip(members, features, words):
        plain = member.model.decoder
        one = GroundedDecoder(plain, member.model.grounding, 2.0, scorers) \
            if member.model.grounding is not None else plain
        own_memory = one.prepare(own)
        scores = ops.convert_to_numpy(one.step(tokens, one.initial_state(own_memory, 5),
                                               own_memory)[0]).astype(np.float64)
        probabilities.append(np.exp(scores - scores.max(-1, keepdims=True)))
        probabilities[-1] /= probabilities[-1].sum(-1, keepdims=True)
    assert not np.allclose(probabilities[0], ops.convert_to_numpy(ops.softmax(
        members[0].model.decoder.step(tokens, members[0].model.decoder.initial_state(
            members[0].model.decoder.prepare(features[0]), 5),
            members[0].model.decoder.prepare(features[0]))[0])), atol=1e-3)  # re-scored
    np.testing.assert_allclose(log_probs, np.log(np.mean(probabilities, 0)), atol=1e-5)


def with_a_head(saved):
    """The bundled model with a grounding head sure enough to change words."""
    from captioner.data.regions import grounding_config
    from captioner.models.captioner import create_captioner
    from tests.test_export import SHAPES
    config = saved.model.model_config
    config.grounding = grounding_config(SHAPES, saved.vocabulary)
    model = create_captioner(config, seed=5)
    for part in ("encoder", "decoder"):
        getattr(model, part).set_weights(getattr(saved.model, part).get_weights())
    model.grounding.classes.kernel.assign(20.0 * np.asarray(model.grounding.classes.kernel))
    return ImageCaptioner(model, saved.vocabulary)


@pytest.mark.slow  # six compiled searches
def test_an_ensemble_of_a_model_with_itself_captions_as_the_model():
    from tests.helpers import load_model
    folder = os.path.join(ROOT, "assets", "model")
    saved = load_model(folder)
    single = ImageCaptioner(saved.model, saved.vocabulary)
    twice = ImageCaptioner.ensemble([single, single])
    samples = os.path.join(ROOT, "assets", "samples")
    paths = [os.path.join(samples, name) for name in sorted(os.listdir(samples))[:3]]
    grounded = with_a_head(load_model(folder))
    grounded_twice = ImageCaptioner.ensemble([grounded, grounded])
    assert [c.best.words for c in grounded.caption(paths)] != [  # the head changes words
        c.best.words for c in grounded.caption(paths, SearchConfig(grounded=0.0))]
    for search, one_model, two_models in (
            (SearchConfig(grounded=0.0), single, twice),
            (SearchConfig(beam=3, n_best=2, grounded=0.0), single, twice),
            (SearchConfig(beam=3, n_best=2), grounded, grounded_twice)):  # grounded: default
        for one, two in zip(one_model.caption(paths, search), two_models.caption(paths,
                                                                                   search)):
            assert [c.words for c in one.n_best] == [c.words for c in two.n_best]
            for a, b in zip(one.n_best, two.n_best):
                np.testing.assert_allclose(a.alphas, b.alphas, atol=1e-5)
                assert a.log_probability == pytest.approx(b.log_probability, abs=1e-4)
    found = twice.caption(paths[:1])[0].best
    size = saved.model.model_config.encoder.image_size
    maps = twice.member_maps(np.stack([load_resized(paths[0], size)]), [found.tokens])[0]
    assert len(maps) == 2 and maps[0].shape == (len(found.words),) + tuple(single.grid_shape)
    np.testing.assert_allclose(maps[0].reshape(len(found.words), -1), found.alphas.reshape(
        len(found.words), -1), atol=1e-5)


def test_members_with_another_vocabulary_are_one_line_naming_both(vocabulary):
    from captioner.data.vocab import Vocabulary
    other = Vocabulary(list(vocabulary.words[:4]) + ["zebra"] + list(vocabulary.words[5:]))
    first = captioner_of(vocabulary, 1)
    first.folder = "runs/a"
    second = captioner_of(vocabulary, 2)
    second.vocabulary, second.folder = other, "runs/b"
    with pytest.raises(ModelError, match="runs/a and runs/b have different ones"):
        ImageCaptioner.ensemble([first, second])
