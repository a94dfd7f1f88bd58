"""CIDEr-D of one caption at a time, with document frequencies fixed from a corpus: the
reward of self-critical sequence training (Rennie et al. 2017).

pycocoevalcap's ``Cider`` (coco-caption's CIDEr-D, ``captioner.metrics.captions``) takes
the document frequencies from the references of the captions it is given and cooks every
reference again on each call: right for scoring a test split, wrong for rewards, where a
batch of 32 images would make every n-gram of a reference look rare. ``CiderD`` counts
them once over the training references (as the SCST code of Rennie et al. and Luo et al.
does) and scores a caption against its image's references with coco-caption's formula
exactly: tf-idf vectors of 1- to 4-grams, clipped cosine similarity, a Gaussian penalty
(sigma 6) on the length difference, averaged over n and over references, times 10. Given
the references of the scored set itself, it reproduces ``Cider().compute_score`` per
caption (tests/metrics/test_cider.py); coco-caption's "length" is the number of bigrams,
and that is kept.
"""

import math
from collections import Counter


def ngrams(words, n=4):
    """{n-gram as a space-joined string: count} for n = 1..``n``."""
    counts = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[" ".join(words[i:i + k])] += 1
    return counts


class CiderD:
    """CIDEr-D against ``references``: per image, a list of references (lists of words).

    ``score(image, words)``: the CIDEr-D of one caption (a list of words) for image index
    ``image``; ``scores(images, captions)``: a list of them.
    """

    def __init__(self, references, n=4, sigma=6.0):
        self.references, self.n, self.sigma = references, n, sigma
        self.document_frequency = Counter()
        for refs in references:
            self.document_frequency.update(set().union(*(ngrams(r, n) for r in refs))
                                           if refs else ())
        self.log_images = math.log(max(len(references), 1))

    def _vector(self, counts):
        """(tf-idf per n: [{ngram: weight}], norms per n, number of bigrams)."""
        vectors = [{} for _ in range(self.n)]
        norms = [0.0] * self.n
        bigrams = 0
        for ngram, count in counts.items():
            order = ngram.count(" ")
            weight = count * (self.log_images
                              - math.log(max(1.0, self.document_frequency[ngram])))
            vectors[order][ngram] = weight
            norms[order] += weight * weight
            if order == 1:
                bigrams += count
        return vectors, [math.sqrt(v) for v in norms], bigrams

    def _similarity(self, hypothesis, reference):
        (vec_h, norm_h, length_h), (vec_r, norm_r, length_r) = hypothesis, reference
        penalty = math.exp(-((length_h - length_r) ** 2) / (2 * self.sigma ** 2))
        total = 0.0
        for order in range(self.n):
            value = sum(min(weight, vec_r[order].get(ngram, 0.0)) * vec_r[order].get(ngram, 0.0)
                        for ngram, weight in vec_h[order].items())
            if norm_h[order] and norm_r[order]:
                value /= norm_h[order] * norm_r[order]
            total += value * penalty
        return total / self.n

    def score(self, image, words):
        return self.scores([image], [words])[0]

    def scores(self, images, captions):
        """CIDEr-D of ``captions[i]`` for image ``images[i]``; an image's reference vectors
        are computed once per call."""
        cooked, results = {}, []
        for image, words in zip(images, captions):
            image = int(image)
            if image not in cooked:
                cooked[image] = [self._vector(ngrams(r, self.n)) for r in self.references[image]]
            refs = cooked[image]
            hypothesis = self._vector(ngrams(words, self.n))
            results.append(10.0 * sum(self._similarity(hypothesis, r) for r in refs)
                           / len(refs) if refs else 0.0)
        return results
