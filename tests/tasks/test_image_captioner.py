"""``ImageCaptioner``: one policy for unreadable inputs, each batch encoded once, its
searches kept per search config, and one ``Caption`` from the search to every output."""

import numpy as np
import pytest

from captioner.data.images import Unreadable, read_batch
from captioner.errors import ImageError

pytestmark = pytest.mark.backend


def test_one_reader_one_policy_for_unreadable_inputs():
    def read(item):
        if item == "bad":
            raise ImageError("Cannot decode image bad")
        return item.upper()
    assert read_batch(["a", "b"], read) == ["A", "B"]
    with pytest.raises(ImageError, match="bad"):
        read_batch(["a", "bad", "b"], read)
    reported = read_batch(["a", "bad", "b"], read, unreadable="report")
    assert reported == ["A", Unreadable("bad", "Cannot decode image bad"), "B"]
    with pytest.raises(ValueError, match="Received: 'skip'"):
        read_batch(["a"], read, unreadable="skip")


def test_the_domain_check_reads_the_statistics_of_what_the_search_decoded(tiny_model,
                                                                         vocabulary, rng):
    """The compiled search returns the mean and spread of the features it decoded from, so
    captioning encodes each batch once: the distances are image_statistics' own."""
    from captioner.data.images import resize_image
    from captioner.domain import Domain, image_statistics
    from captioner.tasks import ImageCaptioner
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(5)]
    inputs = np.stack([resize_image(image, 32) for image in images])
    statistics = image_statistics(tiny_model, inputs)
    task = ImageCaptioner(tiny_model, vocabulary)
    captions, returned = task.decode({"images": inputs}, statistics=True)
    np.testing.assert_allclose(returned, statistics, rtol=1e-4, atol=1e-5)
    assert [c[0].words for c in captions] == [
        c[0].words for c in task.decode({"images": inputs})]
    task.domain = Domain.fit(statistics[:4] + rng.normal(0, 1e-3, statistics[:4].shape))
    answers = task.caption(images, batch_size=8)
    for answer, want, given in zip(answers, task.domain.flags(statistics), images):
        assert answer.domain_distance == pytest.approx(want["distance"], rel=1e-3)
        assert answer.image is given
        assert answer.best.alphas.shape[1:] == tuple(tiny_model.grid_shape)


def test_searches_are_kept_per_search_config_with_the_models_defaults(tiny_model, vocabulary):
    from captioner.config import SearchConfig
    from captioner.search import BeamSampler, GreedySampler
    from captioner.tasks import ImageCaptioner
    task = ImageCaptioner(tiny_model, vocabulary)
    greedy = task.search()
    assert isinstance(greedy.sampler, GreedySampler) and greedy.max_length == 12
    assert task.search(SearchConfig(length_penalty=1.0)) is greedy  # greedy ignores it
    assert task.search(SearchConfig(grounded=0.0)) is greedy  # no head: 0 is the default
    beam = task.search(SearchConfig(beam=3, n_best=2, max_length=5))
    assert isinstance(beam.sampler, BeamSampler) and beam is not greedy
    assert (beam.sampler.width, beam.sampler.n_best, beam.max_length) == (3, 2, 5)
    assert task.search(SearchConfig(beam=3, n_best=2, max_length=5)) is beam
    assert task.search(statistics=True) is not greedy


def test_a_caption_is_made_once_from_the_hypothesis(tiny_model, vocabulary, rng):
    """The search's hypothesis -> ``Caption``: the words of its ids, probabilities, maps
    on the grid; the same object reaches the JSON and the viewer's items."""
    from captioner.config import SearchConfig
    from captioner.tasks import ImageCaptioner
    from captioner.viewer.pages import caption_item
    from tests.helpers import decode_batch
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    task = ImageCaptioner(tiny_model, vocabulary)
    captions = task.decode({"images": images}, SearchConfig(beam=2, n_best=2, max_length=4))
    hypotheses = decode_batch(tiny_model, vocabulary, images, beam_size=2, n_best=2,
                              max_length=4)
    for image_captions, found in zip(captions, hypotheses):
        for caption, hypothesis in zip(image_captions, found):
            assert caption.tokens == hypothesis["tokens"]
            assert caption.words == [vocabulary.words[t] for t in hypothesis["tokens"]]
            assert caption.caption == " ".join(caption.words)
            np.testing.assert_allclose(np.log(caption.probabilities), hypothesis["log_probs"],
                                       rtol=1e-5)
            assert caption.alphas.shape == (len(caption.words), *tiny_model.grid_shape)
            assert caption.log_probability == hypothesis["log_prob"]
            item = caption_item(caption)
            assert [w["w"] for w in item["words"]] == caption.words
            assert caption.to_json()["caption"] == caption.caption
