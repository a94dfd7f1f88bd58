"""Running a model on images (``captioner.inference``): one policy for unreadable inputs,
each batch encoded once, and the described hypotheses."""

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
    from captioner.inference import caption_files, decode_batch
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(5)]
    inputs = np.stack([resize_image(image, 32) for image in images])
    statistics = image_statistics(tiny_model, inputs)
    hypotheses, returned = decode_batch(tiny_model, vocabulary, inputs, statistics=True)
    np.testing.assert_allclose(returned, statistics, rtol=1e-4, atol=1e-5)
    assert [h[0]["tokens"] for h in hypotheses] == [
        h[0]["tokens"] for h in decode_batch(tiny_model, vocabulary, inputs)]
    domain = Domain.fit(statistics[:4] + rng.normal(0, 1e-3, statistics[:4].shape))
    answers = list(caption_files(tiny_model, vocabulary, images, batch_size=8, domain=domain))
    for (_, image, found, place), want, given in zip(answers, domain.flags(statistics), images):
        assert place["distance"] == pytest.approx(want["distance"], rel=1e-3)
        assert image is given and found[0]["alphas"].shape[1:] == tiny_model.grid_shape
