"""``BeamSampler``: beam search, K hypotheses per image, all images at once."""

import dataclasses
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from captioner.search.controls import Controls
from captioner.search.sampler import (
    Sampler,
    caption_scores,
    gather_ranked,
    hypothesis,
    reorder,
    scored,
)


class BeamState(NamedTuple):
    """The beam search's loop variables (B images, K beams in G groups, n best per group,
    T = max_length)."""
    t: object               # the step
    stopped: object         # bool: every image is done, or the last step was taken
    totals: object          # (B, K) live hypotheses' scores (-inf: none)
    words: object           # (B, K, T) int32 live hypotheses' words
    log_probs: object       # (B, K, T)
    alphas: object          # (B, K, T, L)
    done: object            # (B, G) bool: no live hypothesis can beat the n-th finished one
    finished_score: object  # (B, G n) the finished hypotheses' scores, each group's best first
    finished_words: object  # (B, G n, T)
    finished_log_probs: object  # (B, G n, T)
    finished_alphas: object     # (B, G n, T, L)
    finished_length: object     # (B, G n) int32
    finished_end: object        # (B, G n) the log-probability of <end>


POOL = ("finished_score", "finished_words", "finished_log_probs", "finished_alphas",
        "finished_length", "finished_end")


def distinct(hypotheses):
    """The hypotheses with another of the same words left out (the first kept)."""
    seen, kept = set(), []
    for found in hypotheses:
        if tuple(found["tokens"]) not in seen:
            seen.add(tuple(found["tokens"]))
            kept.append(found)
    return kept


def _take(values, index, axis=1):
    """values (B, X, ...) at index (B, Y): rows per image."""
    index = ops.reshape(index, ops.shape(index) + (1,) * (len(values.shape) - len(index.shape)))
    return ops.take_along_axis(values, index, axis=axis)


class BeamSampler(Sampler):
    """Beam search (``width`` = ``beam_size`` hypotheses per image, folded into the batch),
    and diverse beam search (Vijayakumar et al. 2016) with ``groups`` > 1.

    Args:
        beam_size: K, hypotheses kept per image. K = 1 with length_penalty 0 is greedy
            search, exactly.
        n_best: hypotheses returned per image (at most K), best first.
        length_penalty: alpha of ``normalised_score``; 0 ranks by total log-probability,
            which favours short captions, larger values favour longer ones.
        min_length: <end> is not allowed before this many words.
        groups: G, groups of K / G beams. Each group is a beam search of its own, but a
            word loses ``diversity`` x (how many beams of the groups before chose it at
            this step) of its log-probability in the next group (Hamming diversity):
            the groups are driven apart. Each group keeps its own ``n_best`` finished
            hypotheses; the n best different captions of all of them, by their own
            log-probabilities, are the answer.
        diversity: lambda, the Hamming diversity penalty (groups > 1).
        controls: a ``captioner.search.Controls`` (its min_length is ``min_length``).

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

    def __init__(self, beam_size=3, n_best=1, length_penalty=0.0, min_length=0, groups=1,
                 diversity=0.0, controls=None):
        if beam_size < 1 or not 1 <= n_best <= beam_size:
            raise ValueError(f"Need beam_size >= 1 and 1 <= n_best <= beam_size. "
                             f"Received: beam_size={beam_size}, n_best={n_best}")
        if groups < 1 or beam_size % groups:
            raise ValueError(f"Need groups >= 1 dividing beam_size. Received: "
                             f"beam_size={beam_size}, groups={groups}")
        self.width, self.n_best, self.groups = beam_size, n_best, groups
        self.length_penalty, self.min_length, self.diversity = length_penalty, min_length, \
            diversity
        if min_length or controls is not None:
            controls = dataclasses.replace(controls or Controls(), min_length=min_length)
        self.controls = controls

    def start(self, batch_size, start_id, end_id, max_length, cells):
        k, g, words_max = self.width, self.groups, max_length
        pool = g * self.n_best
        # each group starts with one hypothesis: its beams are identical
        # log 1 and log 0 (not a select of two constants, which ONNX converts to NaN)
        first = ops.log(ops.cast(ops.arange(k)[None] % (k // g) == 0, "float32")) * \
            ops.ones((batch_size, 1))
        return BeamState(
            ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(False), first,
            ops.zeros((batch_size, k, words_max), "int32"),
            ops.zeros((batch_size, k, words_max)), ops.zeros((batch_size, k, words_max, cells)),
            ops.zeros((batch_size, g), "bool"), ops.full((batch_size, pool), -np.inf),
            ops.zeros((batch_size, pool, words_max), "int32"),
            ops.zeros((batch_size, pool, words_max)),
            ops.zeros((batch_size, pool, words_max, cells)),
            ops.zeros((batch_size, pool), "int32"), ops.zeros((batch_size, pool)))

    def running(self, variables):
        return ~variables.stopped

    def advance(self, variables, tokens, scores, alpha, state, new_state):
        s, k, n, words_max = variables, self.width, self.n_best, self.max_length
        t, width = s.t, k // self.groups
        batch_size = ops.shape(s.totals)[0]
        vocab = ops.shape(scores)[-1]
        scores = ops.reshape(scores, (batch_size, k, vocab))
        alpha = ops.reshape(alpha, (batch_size, k, self.cells))
        chosen_before = ops.zeros((batch_size, vocab))  # words the groups before chose
        steps = []
        for group in range(self.groups):
            beams, pool = slice(group * width, (group + 1) * width), slice(group * n,
                                                                            (group + 1) * n)
            own = scores[:, beams]
            searched = own - self.diversity * chosen_before[:, None] if group else own
            view = BeamState(t, s.stopped, *(field[:, beams] for field in s[2:6]),
                             s.done[:, group], *(field[:, pool] for field in s[7:]))
            found = self.choose(view, searched, own)
            found["parents"] = found["parents"] + group * width  # in the image's beams
            steps.append(found)
            if group < self.groups - 1:
                chosen_before = chosen_before + ops.sum(
                    ops.one_hot(found["tokens"], vocab) * ops.cast(found["kept"], "float32")[
                        ..., None], axis=1)
        joined = {key: ops.concatenate([found[key] for found in steps], axis=1)
                  for key in steps[0] if key != "done"}
        parents = joined["parents"]  # (B, K), each group's beams' parents in their group
        done = ops.stack([found["done"] for found in steps], axis=1)  # (B, G)
        stopped = ops.all(done) | (t == words_max)
        # extend the live hypotheses (not on the last step: the search stops first)
        here = ops.one_hot(t, words_max, dtype="float32")[None, None]  # (1, 1, T)
        new_tokens = joined["tokens"]
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
            ops.where(stopped, t, t + 1), stopped, keep(s.totals, joined["totals"]), words,
            log_probs, alphas, done, *(joined[key] for key in POOL))

    def choose(self, view, scores, own):
        """One group's step: ``view`` the ``BeamState`` of its k beams and n finished,
        ``scores`` (B, k, V) what it searches by, ``own`` (B, k, V) the log-probabilities
        (the same but under diverse beam search's penalty) -> its live beams' "parents",
        "tokens", "totals" and "kept" (B, k), "done" (B,), and its finished pool (B, n
        each, the ``POOL`` fields)."""
        t, k = view.t, view.totals.shape[1]
        n = view.finished_score.shape[1]
        batch_size, vocab = ops.shape(scores)[0], ops.shape(scores)[-1]
        inf = float("inf")
        candidates = ops.reshape(view.totals[:, :, None] + scores, (batch_size, k * vocab))
        total, flat = ops.top_k(candidates, 2 * k)  # best first, ties by index
        parent, token = flat // vocab, flat % vocab
        rank = ops.arange(2 * k)[None]
        valid = scored(total) & ~view.done[:, None]
        ends = valid & (token == self.end_id)
        # the finished: <end> among the best K candidates
        finish = ends & (rank < k)
        end_score = total / ops.cast(t + 1, "float32") ** self.length_penalty
        pool_score = ops.concatenate([view.finished_score, ops.where(finish, end_score, -inf)],
                                     1)
        pool_score, chosen = ops.top_k(pool_score, n)

        def pool(finished, candidates):  # the n best of the finished and the candidates
            return _take(ops.concatenate([finished, candidates], 1), chosen)
        found = {"finished_score": pool_score,
                 "finished_words": pool(view.finished_words, _take(view.words, parent)),
                 "finished_log_probs": pool(view.finished_log_probs,
                                            _take(view.log_probs, parent)),
                 "finished_alphas": pool(view.finished_alphas, _take(view.alphas, parent)),
                 "finished_length": pool(view.finished_length,
                                         ops.full((batch_size, 2 * k), t, "int32")),
                 "finished_end": pool(view.finished_end, _take(own[:, :, self.end_id], parent))}
        # the live: the best K candidates that do not end
        live = valid & (token != self.end_id)
        order = ops.argsort(ops.where(live, rank, 2 * k + rank), axis=1)[:, :k]
        kept = _take(live, order)
        totals = ops.where(kept, _take(total, order), -inf)
        best_possible = ops.max(totals, axis=1) / float(self.max_length + 1) ** \
            self.length_penalty
        nth = pool_score[:, n - 1]
        return {**found, "parents": ops.where(kept, _take(parent, order), 0),
                "tokens": ops.where(kept, _take(token, order), self.end_id), "totals": totals,
                "kept": kept, "done": view.done | (scored(nth) & (best_possible <= nth))}

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
            for slot in range(outputs["finished_score"].shape[1]):
                if not np.isfinite(outputs["finished_score"][image, slot]):
                    continue  # a group's pool is best first: the rest of it is empty too
                length = int(outputs["finished_length"][image, slot])
                hypotheses.append(hypothesis(
                    outputs["finished_words"][image, slot, :length],
                    outputs["finished_log_probs"][image, slot, :length],
                    outputs["finished_alphas"][image, slot, :length],
                    float(outputs["finished_end"][image, slot]), self.length_penalty))
            if self.groups > 1:  # the groups' best, by their own log-probabilities, once each
                hypotheses = distinct(sorted(hypotheses, key=lambda h: -h["score"]))
            hypotheses = hypotheses[:self.n_best]
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

    def ranked(self, outputs):
        """``hypotheses`` in ops: the finished (the pool's order; with groups, by score and
        each caption once), then the best unfinished, n of them."""
        n, width = self.n_best, self.width
        pool = outputs["finished_score"]
        batch_size, slots = ops.shape(pool)[0], pool.shape[1]
        lengths = outputs["finished_length"]
        exists = scored(pool)
        finished = {"tokens": outputs["finished_words"], "lengths": lengths,
                    "log_probs": outputs["finished_log_probs"],
                    "alphas": outputs["finished_alphas"], "finished": exists,
                    "scores": caption_scores(outputs["finished_log_probs"], lengths,
                                             outputs["finished_end"], exists,
                                             self.length_penalty)}
        if self.groups == 1:  # the pool is best first
            key = ops.where(exists, 1e6 - ops.cast(ops.arange(slots), "float32")[None], -np.inf)
        else:  # by score, a caption once
            order = ops.top_k(ops.where(exists, finished["scores"], -np.inf), slots)[1]
            finished = gather_ranked(finished, order)
            exists = finished["finished"]
            same = ops.all(finished["tokens"][:, :, None] == finished["tokens"][:, None], -1) & \
                (finished["lengths"][:, :, None] == finished["lengths"][:, None])
            earlier = ops.arange(slots)[None, :] < ops.arange(slots)[:, None]  # j before i
            repeated = ops.any(same & earlier[None] & exists[:, None, :], axis=-1)
            exists = exists & ~repeated
            key = ops.where(exists, 1e6 + finished["scores"], -np.inf)
        live_length = ops.full((batch_size, width), outputs["live_length"], "int32")
        alive = scored(outputs["totals"])
        unfinished = {"tokens": outputs["words"], "lengths": live_length,
                      "log_probs": outputs["log_probs"], "alphas": outputs["alphas"],
                      "finished": ops.zeros((batch_size, width), "bool"),
                      "scores": caption_scores(outputs["log_probs"], live_length,
                                               ops.zeros((batch_size, width)),
                                               ops.zeros((batch_size, width), "bool"),
                                               self.length_penalty)}
        key = ops.concatenate([key, ops.where(alive, unfinished["scores"], -np.inf)], 1)
        both = {name: ops.concatenate([finished[name], unfinished[name]], 1)
                for name in finished}
        chosen, order = ops.top_k(key, n)
        found = gather_ranked(both, order)
        present = scored(chosen)
        found["scores"] = ops.where(present, found["scores"], -np.inf)
        found["lengths"] = ops.where(present, found["lengths"], 0)
        return found
