"""``SamplingSampler``: captions drawn from the model, several per image, with temperature,
top-k and top-p (nucleus) filtering, repeatable by a seed on any backend.

The noise is counter-based: each word's Gumbel draw is a hash of (seed, sample, step,
word) in 32-bit integer ``keras.ops`` (``uniform_bits``), not a backend's random state, so
a seed gives the same captions on TensorFlow and on JAX, compiled or not, in whatever batch
an image is decoded (a server's batches included), and the search exports with its noise.
"""

import numpy as np
from keras import ops

from captioner.search.greedy import GreedySampler
from captioner.search.sampler import caption_scores, gather_ranked, normalised_score

GOLDEN = 0x9E3779B9  # 2 ** 32 / the golden ratio: keeps a zero key from hashing to zero


def _mix(x):
    """Chris Wellons' lowbias32 integer hash of uint32 ``x`` (a bijection)."""
    x = x ^ ops.right_shift(x, 16)
    x = x * ops.convert_to_tensor(0x7FEB352D, "uint32")
    x = x ^ ops.right_shift(x, 15)
    x = x * ops.convert_to_tensor(0x846CA68B, "uint32")
    return x ^ ops.right_shift(x, 16)


def uniform_bits(seed, sample, t, vocab):
    """uint32 (rows, vocab): the hash of (seed (rows,), sample (rows,), step t, word)."""
    def u32(x):
        return ops.cast(x, "uint32")
    x = _mix(u32(seed) ^ ops.convert_to_tensor(GOLDEN, "uint32"))
    x = _mix(x + u32(sample))
    x = _mix(x + u32(t))[:, None]
    return _mix(x + u32(ops.arange(vocab))[None])


def gumbel(seed, sample, t, vocab):
    """Gumbel noise (rows, vocab), float32: -log(-log(u)) of u in (0, 1) from the top 24
    bits of ``uniform_bits``."""
    bits = ops.cast(ops.right_shift(uniform_bits(seed, sample, t, vocab), 8), "float32")
    uniform = (bits + 0.5) / float(2 ** 24)
    return -ops.log(-ops.log(uniform))


class SamplingSampler(GreedySampler):
    """``samples`` captions per image, each word drawn (Gumbel-max) from the step's
    distribution divided by ``temperature``, kept to its ``top_k`` most likely words (0:
    all) and to the smallest set of them whose probability reaches ``top_p`` (1: all).

    ``seeds`` (batch,) int, one per image, set by ``seeded`` when the search is traced:
    the same seed gives the same captions. The captions' log-probabilities are the
    model's own (the controlled distribution's, not the tempered or filtered one); an
    image's samples are listed best first by ``normalised_score`` with ``length_penalty``.
    Duplicates are kept: how often a caption is drawn is part of the answer.
    """

    def __init__(self, samples=1, temperature=1.0, top_k=0, top_p=1.0, length_penalty=0.0,
                 controls=None):
        if samples < 1 or temperature <= 0 or top_k < 0 or not 0 < top_p <= 1:
            raise ValueError(f"Need samples >= 1, temperature > 0, top_k >= 0 and 0 < top_p "
                             f"<= 1. Received: samples={samples}, temperature={temperature}, "
                             f"top_k={top_k}, top_p={top_p}")
        super().__init__(controls)
        self.width, self.temperature, self.top_k, self.top_p = samples, temperature, top_k, \
            top_p
        self.length_penalty = length_penalty
        self.seeds = None

    def seeded(self, seeds):
        """This sampler drawing with ``seeds`` (batch,) int, one per image."""
        sampler = SamplingSampler(self.width, self.temperature, self.top_k, self.top_p,
                                  self.length_penalty, self.controls)
        sampler.seeds = seeds
        return sampler

    def start(self, batch_size, start_id, end_id, max_length, cells):
        return super().start(batch_size * self.width, start_id, end_id, max_length, cells)

    def filtered(self, scores):
        """The step's scores (rows, V) tempered and filtered: -inf outside the top k and
        the top p."""
        scores = scores / self.temperature
        vocab = scores.shape[-1]
        if self.top_k and self.top_k < vocab:
            kth = ops.top_k(scores, self.top_k)[0][:, -1:]
            scores = ops.where(scores >= kth, scores, -np.inf)
        if self.top_p < 1.0:
            ranked = ops.top_k(scores, vocab)[0]  # descending
            probs = ops.softmax(ranked, axis=-1)
            before = ops.cumsum(probs, axis=-1) - probs  # what the more likely words hold
            # the most likely word is always kept
            kept = (before < self.top_p) | (ops.arange(vocab)[None] == 0)
            least = ops.min(ops.where(kept, ranked, np.inf), axis=-1, keepdims=True)
            scores = ops.where(scores >= least, scores, -np.inf)
        return scores

    def pick(self, t, scores):
        rows = ops.shape(scores)[0]
        if self.seeds is None:
            raise ValueError("SamplingSampler draws with seeds: use sampler.seeded(seeds)")
        seeds = ops.repeat(ops.cast(self.seeds, "uint32"), self.width, axis=0)
        sample = ops.arange(rows) % self.width
        return self.filtered(scores) + gumbel(seeds, sample, t, scores.shape[-1])

    def hypotheses(self, outputs):
        """Per image its ``samples`` captions, best first."""
        rows = super().hypotheses(outputs)
        results = []
        for image in range(len(rows) // self.width):
            drawn = [found for (found,) in rows[image * self.width:(image + 1) * self.width]]
            for found in drawn:
                scored = len(found["log_probs"]) + found["finished"]
                found["score"] = normalised_score(found["log_prob"], scored, self.length_penalty)
            results.append(sorted(drawn, key=lambda h: -h["score"]))
        return results

    def ranked(self, outputs):
        n = self.width
        fields = {"tokens": outputs["words"], "lengths": outputs["lengths"],
                  "log_probs": outputs["log_probs"], "alphas": outputs["alphas"],
                  "finished": outputs["finished"],
                  "scores": caption_scores(outputs["log_probs"], outputs["lengths"],
                                           outputs["end_log_prob"], outputs["finished"],
                                           self.length_penalty)}
        fields = {key: ops.reshape(value, (-1, n) + tuple(value.shape[1:]))
                  for key, value in fields.items()}  # (B, N, ...), image-major rows
        return gather_ranked(fields, ops.top_k(fields["scores"], n)[1])  # ties: first drawn
