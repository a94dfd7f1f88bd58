import numpy as np
import pytest

from captioner.metrics.cider import CiderD


def _set(rng, images=12):
    words = "a red blue green circle square star on the left right of and small".split()
    refs = {i: [" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(rng.integers(1, 5))]
            for i in range(images)}
    candidates = {i: " ".join(rng.choice(words, rng.integers(1, 10))) for i in range(images)}
    candidates[0] = refs[0][0]  # one exact match
    return refs, candidates


def test_cider_d_per_caption_equals_coco_caption_given_the_same_references(rng):
    """With the scored set's own references as the corpus, each caption's CIDEr-D is
    pycocoevalcap's, to the last digit."""
    from pycocoevalcap.cider.cider import Cider
    refs, candidates = _set(rng)
    gts = {i: refs[i] for i in refs}
    res = {i: [candidates[i]] for i in refs}
    mean, expected = Cider().compute_score(gts, res)
    scorer = CiderD([[r.split() for r in refs[i]] for i in sorted(refs)])
    got = scorer.scores(sorted(refs), [candidates[i].split() for i in sorted(refs)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert np.mean(got) == pytest.approx(mean)
    assert scorer.score(3, candidates[3].split()) == pytest.approx(expected[3])
    assert got[0] > np.median(got)


def test_document_frequencies_come_from_the_corpus_not_the_batch(rng):
    """A word every image's references use earns nothing; scoring one image alone does
    not make it rare (pycocoevalcap on a one-image batch would weigh it by log 1 = 0)."""
    refs = [["a", "red", "circle"], ["a", "blue", "square"], ["a", "green", "star"]]
    scorer = CiderD([[r] for r in refs])
    assert scorer.score(0, ["a"]) == 0.0
    assert scorer.score(0, ["red", "circle"]) > scorer.score(0, ["blue", "square"]) == 0.0
    assert scorer.score(0, ["a", "red", "circle"]) > scorer.score(0, ["red", "circle"])
