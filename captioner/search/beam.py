"""``BeamSampler``: beam search, K hypotheses per image, all images at once."""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from captioner.search.sampler import Sampler, hypothesis, reorder


class BeamState(NamedTuple):
    """The beam search's loop variables (B images, K beams, n best, T = max_length)."""
    t: object               # the step
    stopped: object         # bool: every image is done, or the last step was taken
    totals: object          # (B, K) live hypotheses' log-probabilities (-inf: none)
    words: object           # (B, K, T) int32 live hypotheses' words
    log_probs: object       # (B, K, T)
    alphas: object          # (B, K, T, L)
    done: object            # (B,) bool: no live hypothesis can beat the n-th finished one
    finished_score: object  # (B, n) the finished hypotheses' scores, best first
    finished_words: object  # (B, n, T)
    finished_log_probs: object  # (B, n, T)
    finished_alphas: object     # (B, n, T, L)
    finished_length: object     # (B, n) int32
    finished_total: object      # (B, n) log-probability, <end>'s included


def _take(values, index, axis=1):
    """values (B, X, ...) at index (B, Y): rows per image."""
    index = ops.reshape(index, ops.shape(index) + (1,) * (len(values.shape) - len(index.shape)))
    return ops.take_along_axis(values, index, axis=axis)


class BeamSampler(Sampler):
    """Beam search (``width`` = ``beam_size`` hypotheses per image, folded into the batch).

    Args:
        beam_size: K, hypotheses kept per image. K = 1 with length_penalty 0 is greedy
            search, exactly.
        n_best: hypotheses returned per image (at most K), best first.
        length_penalty: alpha of ``normalised_score``; 0 ranks by total log-probability,
            which favours short captions, larger values favour longer ones.
        min_length: <end> is not allowed before this many words.

    At each step every live hypothesis is extended by every word; of the best 2K
    candidates per image, those ending in <end> that rank among the best K are finished
    (as in fairseq), and the best K others stay live. An image is done when no live
    hypothesis can still beat its n-th best finished one: a live hypothesis'
    log-probability only falls, and its length is at most ``max_length`` + 1, which bounds
    its final score. If fewer than ``n_best`` finish within ``max_length`` words, the best
    unfinished ones fill the list (``finished: False``): there is always an answer.
    ``tests/reference_search.py`` is the same search in NumPy, step by step.

    ``outputs``: ``BeamState``'s fields but ``stopped`` and ``done``, with "live_length"
    (the live hypotheses' length) for "t".
    """

    def __init__(self, beam_size=3, n_best=1, length_penalty=0.0, min_length=0):
        if beam_size < 1 or not 1 <= n_best <= beam_size:
            raise ValueError(f"Need beam_size >= 1 and 1 <= n_best <= beam_size. "
                             f"Received: beam_size={beam_size}, n_best={n_best}")
        self.width, self.n_best = beam_size, n_best
        self.length_penalty, self.min_length = length_penalty, min_length

    def start(self, batch_size, start_id, end_id, max_length, cells):
        k, n, words_max = self.width, self.n_best, max_length
        first = ops.where(ops.arange(k)[None] == 0, 0.0, -np.inf) * ops.ones((batch_size, 1))
        return BeamState(
            ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(False), first,
            ops.zeros((batch_size, k, words_max), "int32"),
            ops.zeros((batch_size, k, words_max)), ops.zeros((batch_size, k, words_max, cells)),
            ops.zeros((batch_size,), "bool"), ops.full((batch_size, n), -np.inf),
            ops.zeros((batch_size, n, words_max), "int32"),
            ops.zeros((batch_size, n, words_max)), ops.zeros((batch_size, n, words_max, cells)),
            ops.zeros((batch_size, n), "int32"), ops.zeros((batch_size, n)))

    def running(self, variables):
        return ~variables.stopped

    def advance(self, variables, tokens, scores, alpha, state, new_state):
        s, k, n, words_max = variables, self.width, self.n_best, self.max_length
        t, inf = s.t, float("inf")
        batch_size = ops.shape(s.totals)[0]
        vocab = ops.shape(scores)[-1]
        scores = ops.reshape(scores, (batch_size, k, vocab))
        blocked = ops.cast(ops.one_hot(self.end_id, vocab), "bool") & (t < self.min_length)
        scores = ops.where(blocked[None, None], -inf, scores)
        alpha = ops.reshape(alpha, (batch_size, k, self.cells))
        candidates = ops.reshape(s.totals[:, :, None] + scores, (batch_size, k * vocab))
        total, flat = ops.top_k(candidates, 2 * k)  # best first, ties by index
        parent, token = flat // vocab, flat % vocab
        rank = ops.arange(2 * k)[None]
        valid = ops.isfinite(total) & ~s.done[:, None]
        ends = valid & (token == self.end_id)
        # the finished: <end> among the best K candidates
        finish = ends & (rank < k)
        end_score = total / ops.cast(t + 1, "float32") ** self.length_penalty
        pool_score = ops.concatenate([s.finished_score, ops.where(finish, end_score, -inf)], 1)
        pool_score, chosen = ops.top_k(pool_score, n)

        def pool(finished, candidates):  # the n best of the finished and the candidates
            return _take(ops.concatenate([finished, candidates], 1), chosen)
        f_words = pool(s.finished_words, _take(s.words, parent))
        f_log_probs = pool(s.finished_log_probs, _take(s.log_probs, parent))
        f_alphas = pool(s.finished_alphas, _take(s.alphas, parent))
        f_length = pool(s.finished_length, ops.full((batch_size, 2 * k), t, "int32"))
        f_total = pool(s.finished_total, total)
        # the live: the best K candidates that do not end
        live = valid & (token != self.end_id)
        order = ops.argsort(ops.where(live, rank, 2 * k + rank), axis=1)[:, :k]
        kept = _take(live, order)
        parents = ops.where(kept, _take(parent, order), 0)
        new_tokens = ops.where(kept, _take(token, order), self.end_id)
        new_totals = ops.where(kept, _take(total, order), -inf)
        best_possible = ops.max(new_totals, axis=1) / float(words_max + 1) ** self.length_penalty
        nth = pool_score[:, n - 1]
        done = s.done | (ops.isfinite(nth) & (best_possible <= nth))
        stopped = ops.all(done) | (t == words_max)
        # extend the live hypotheses (not on the last step: the search stops first)
        here = ops.one_hot(t, words_max, dtype="float32")[None, None]  # (1, 1, T)
        word_log_probs = _take(_take(scores, parents), new_tokens[:, :, None], axis=2)[:, :, 0]
        extended = (
            _take(s.words, parents) + ops.cast(here, "int32") * new_tokens[:, :, None],
            _take(s.log_probs, parents) + here * word_log_probs[:, :, None],
            _take(s.alphas, parents) + here[..., None] * _take(alpha, parents)[:, :, None, :])
        new_state = reorder(new_state, ops.reshape(
            ops.arange(batch_size)[:, None] * k + parents, (-1,)))

        def keep(old, new):  # the old values once stopped
            return ops.where(ops.reshape(stopped, (1,) * len(new.shape)), old, new)
        words, log_probs, alphas = (keep(o, e) for o, e in zip(
            (s.words, s.log_probs, s.alphas), extended))
        state = keras.tree.map_structure(keep, state, new_state)
        return keep(tokens, ops.reshape(new_tokens, (-1,))), state, BeamState(
            ops.where(stopped, t, t + 1), stopped, keep(s.totals, new_totals), words,
            log_probs, alphas, done, pool_score, f_words, f_log_probs, f_alphas, f_length,
            f_total)

    def outputs(self, variables):
        fields = variables._asdict()
        fields["live_length"] = fields.pop("t")
        del fields["stopped"], fields["done"]
        return fields

    def hypotheses(self, outputs):
        """Per image the ``n_best`` hypotheses, best first (the unfinished fill in where too
        few ended)."""
        results = []
        live_length = int(outputs["live_length"])
        for image in range(len(outputs["totals"])):
            hypotheses = []
            for slot in range(self.n_best):
                if not np.isfinite(outputs["finished_score"][image, slot]):
                    break
                length = int(outputs["finished_length"][image, slot])
                log_probs = outputs["finished_log_probs"][image, slot, :length]
                end = float(outputs["finished_total"][image, slot]) - float(np.sum(log_probs))
                hypotheses.append(hypothesis(outputs["finished_words"][image, slot, :length],
                                             log_probs,
                                             outputs["finished_alphas"][image, slot, :length],
                                             end, self.length_penalty))
            if len(hypotheses) < self.n_best:
                unfinished = [hypothesis(outputs["words"][image, beam, :live_length],
                                         outputs["log_probs"][image, beam, :live_length],
                                         outputs["alphas"][image, beam, :live_length], None,
                                         self.length_penalty)
                              for beam in range(outputs["totals"].shape[1])
                              if np.isfinite(outputs["totals"][image, beam])]
                unfinished.sort(key=lambda h: -h["score"])
                hypotheses += unfinished[:self.n_best - len(hypotheses)]
            results.append(hypotheses)
        return results
