"""The reference searches: greedy, sampling and (diverse) beam search step by step in NumPy,
a host round trip per word, with the controls (bans, minimum length, n-gram blocking,
repetition penalty) and the sampling noise written out again here. The production
searches are the graphs of ``captioner.search`` (compiled whole, exported); the tests hold
them to these, hypothesis for hypothesis.

They take the step function ``step(tokens (N,), state, memory) -> (logits (N, V), state,
alpha (N, L))`` and return, per image, a list of hypotheses, best first (see
``captioner.search``).
"""

import keras
import numpy as np
from keras import ops

from captioner.search import hypothesis as _hypothesis
from captioner.search import normalised_score
from captioner.search import tile as _tile


def log_softmax(logits):
    """Numerically stable log-softmax over the last axis of a NumPy array."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def controlled(scores, written, end_id, banned=(), min_length=0, no_repeat_ngram=0,
               repetition_penalty=1.0):
    """The controlled log-probabilities of one step: ``scores`` (N, V), ``written`` each
    row's words so far (N lists); ``captioner.search.Controls``' rules, row by row."""
    scores = scores.copy()
    for row, words in enumerate(written):
        if repetition_penalty != 1.0:
            seen = sorted(set(words))
            scores[row, seen] *= repetition_penalty
        blocked = set(banned)
        if len(words) < min_length:
            blocked.add(end_id)
        n = no_repeat_ngram
        if n and len(words) >= n - 1:
            last = words[len(words) - n + 1:]
            blocked |= {words[j] for j in range(n - 1, len(words)) if words[j - n + 1:j] == last}
        scores[row, sorted(blocked)] = -np.inf
    with np.errstate(invalid="ignore"):
        return log_softmax(scores)


def _step(step, tokens, state, memory, written=None, end_id=None, controls=None):
    logits, state, alpha = step(ops.convert_to_tensor(np.asarray(tokens, np.int32)), state, memory)
    scores = log_softmax(ops.convert_to_numpy(logits).astype(np.float64))  # (N, V)
    if controls:
        scores = controlled(scores, written, end_id, **controls)
    return scores, state, ops.convert_to_numpy(alpha)


def _mix(x):
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def gumbel_noise(seed, sample, t, vocab):
    """The Gumbel noise (V,) of one sample's step: -log(-log(u)), u from the lowbias32 hash
    chain of (seed, sample, t, word), in float64."""
    with np.errstate(over="ignore"):
        x = _mix(np.array([seed], np.int64).astype(np.uint32) ^ np.uint32(0x9E3779B9))
        for part in (sample, t):
            x = _mix(x + np.uint32(part))
        x = _mix(x + np.arange(vocab, dtype=np.uint32))
    uniform = ((x >> np.uint32(8)).astype(np.float64) + 0.5) / 2 ** 24
    return -np.log(-np.log(uniform))


def filtered(scores, temperature=1.0, top_k=0, top_p=1.0):
    """One row's scores (V,) tempered, kept to the top k words and to the smallest set
    whose probability reaches top_p (the most likely word always)."""
    scores = scores / temperature
    if top_k and top_k < len(scores):
        scores = np.where(scores >= np.sort(scores)[::-1][top_k - 1], scores, -np.inf)
    if top_p < 1.0:
        ranked = np.sort(scores)[::-1]
        with np.errstate(invalid="ignore"):
            probs = np.exp(ranked - ranked[0])
        probs /= probs.sum()
        kept = [0] + [i for i in range(1, len(ranked)) if probs[:i].sum() < top_p]
        scores = np.where(scores >= ranked[max(kept)], scores, -np.inf)
    return scores


def greedy_search(step, state, memory, batch_size, start_id, end_id, max_length,
                  controls=None, pick=None):
    """Picks the most likely word at every step, for the whole batch at once (``pick(t,
    scores)``: the scores (N, V) the word is the best of, by default the scores).

    A caption ends at <end> or, unfinished, after ``max_length`` words.
    """
    tokens = np.full((batch_size,), start_id, np.int32)
    words = np.zeros((batch_size, 0), np.int32)
    log_probs, alphas = np.zeros((batch_size, 0)), None
    end_log_prob = [None] * batch_size
    running = np.ones(batch_size, bool)
    written = [[] for _ in range(batch_size)]
    for length in range(max_length + 1):
        scores, state, alpha = _step(step, tokens, state, memory, written, end_id, controls)
        tokens = (pick(length, scores) if pick else scores).argmax(-1).astype(np.int32)
        written = [row + [int(token)] for row, token in zip(written, tokens)]
        chosen = scores[np.arange(batch_size), tokens]
        for row in np.flatnonzero(running & (tokens == end_id)):
            end_log_prob[row], running[row] = chosen[row], False
        if not running.any() or length == max_length:
            break
        words = np.concatenate([words, np.where(running, tokens, end_id)[:, None]], 1)
        log_probs = np.concatenate([log_probs, chosen[:, None]], 1)
        alphas = alpha[:, None] if alphas is None else np.concatenate([alphas, alpha[:, None]], 1)
    results = []
    for row in range(batch_size):
        length = words.shape[1] if running[row] else int(np.argmax(
            np.append(words[row], end_id) == end_id))
        row_alphas = alphas[row, :length] if alphas is not None else np.zeros((0, alpha.shape[-1]))
        results.append([_hypothesis(words[row, :length], log_probs[row, :length], row_alphas,
                                    end_log_prob[row], 0.0)])
    return results


def sampled_search(step, state, memory, batch_size, start_id, end_id, max_length, seeds,
                   samples=1, temperature=1.0, top_k=0, top_p=1.0, length_penalty=0.0,
                   controls=None):
    """``samples`` captions per image drawn word by word (Gumbel-max over ``filtered``
    scores plus ``gumbel_noise`` of the image's seed), listed best first."""
    rows = batch_size * samples
    seed_of = np.repeat(np.asarray(seeds), samples)

    def pick(t, scores):
        return np.stack([filtered(scores[row], temperature, top_k, top_p) +
                         gumbel_noise(seed_of[row], row % samples, t, scores.shape[-1])
                         for row in range(rows)])
    drawn = greedy_search(step, _tile(state, samples), _tile(memory, samples), rows, start_id,
                          end_id, max_length, controls, pick)
    results = []
    for image in range(batch_size):
        found = [h for (h,) in drawn[image * samples:(image + 1) * samples]]
        for h in found:
            h["score"] = normalised_score(h["log_prob"], len(h["tokens"]) + h["finished"],
                                          length_penalty)
        results.append(sorted(found, key=lambda h: -h["score"]))
    return results


def _reorder(nest, rows):
    rows = ops.convert_to_tensor(rows.astype(np.int32))
    return keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), nest)


def beam_search(step, state, memory, batch_size, start_id, end_id, max_length, beam_size=3,
                n_best=1, length_penalty=0.0, min_length=0, groups=1, diversity=0.0,
                controls=None):
    """Beam search over all images at once, one step per host round trip; returns the
    ``n_best`` hypotheses per image. The rules (candidates, finishing, stopping, the
    unfinished that fill in, and with ``groups`` > 1 diverse beam search's groups and
    Hamming penalty) are ``captioner.search.BeamSampler``'s, which this spells out step by
    step."""
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"Need beam_size >= 1 and 1 <= n_best <= beam_size. "
                         f"Received: beam_size={beam_size}, n_best={n_best}")
    k, width = beam_size, beam_size // groups
    controls = {**(controls or {}), "min_length": min_length}
    memory, state = _tile(memory, k), _tile(state, k)
    tokens = np.full((batch_size * k,), start_id, np.int32)
    totals = np.full((batch_size, k), -np.inf)
    totals[:, ::width] = 0.0  # a group's beams start identical: only one of them may expand
    words = np.zeros((batch_size, k, 0), np.int32)
    log_probs = np.zeros((batch_size, k, 0))
    alphas = None
    finished = [[[] for _ in range(groups)] for _ in range(batch_size)]  # (rank, hypothesis)
    done = np.zeros((batch_size, groups), bool)
    best_possible = lambda total: normalised_score(total, max_length + 1, length_penalty)  # noqa: E731
    for length in range(max_length + 1):
        written = [list(map(int, words[image, beam])) for image in range(batch_size)
                   for beam in range(k)]
        scores, state, alpha = _step(step, tokens, state, memory, written, end_id, controls)
        vocab = scores.shape[-1]
        scores = scores.reshape(batch_size, k, vocab)
        alpha = alpha.reshape(batch_size, k, -1)
        parents = np.zeros((batch_size, k), np.int64)
        new_tokens = np.full((batch_size, k), end_id, np.int32)
        new_totals = np.full((batch_size, k), -np.inf)
        for image in range(batch_size):
            chosen = np.zeros(vocab)  # how often the groups before chose each word
            for group in range(groups):
                first = group * width
                searched = scores[image, first:first + width] - diversity * chosen[None]
                candidates = (totals[image, first:first + width, None] + searched).reshape(-1)
                top = np.argsort(-candidates, kind="stable")[:2 * width]
                live = 0
                for rank, flat in enumerate(top):
                    parent, token = divmod(int(flat), vocab)
                    parent += first
                    total = candidates[flat]
                    if done[image, group] or not np.isfinite(total):
                        break
                    if token == end_id:
                        if rank < width:
                            finished[image][group].append((total / (length + 1) ** length_penalty,
                                                           _hypothesis(
                                words[image, parent], log_probs[image, parent],
                                _alphas_of(alphas, image, parent, alpha.shape[-1]),
                                scores[image, parent, end_id], length_penalty)))
                    elif live < width:
                        slot = first + live
                        parents[image, slot], new_tokens[image, slot] = parent, token
                        new_totals[image, slot] = total
                        live += 1
                for slot in range(first, first + live):
                    chosen[new_tokens[image, slot]] += 1
                ranked = sorted((r for r, _ in finished[image][group]), reverse=True)
                if len(ranked) >= n_best and best_possible(
                        new_totals[image, first:first + width].max()) <= ranked[n_best - 1]:
                    done[image, group] = True
        if done.all() or length == max_length:
            break
        word_log_probs = scores[np.arange(batch_size)[:, None], parents, new_tokens]
        words = np.concatenate([np.take_along_axis(words, parents[:, :, None], 1),
                                new_tokens[:, :, None]], 2)
        log_probs = np.concatenate([np.take_along_axis(log_probs, parents[:, :, None], 1),
                                    word_log_probs[:, :, None]], 2)
        step_alpha = np.take_along_axis(alpha, parents[:, :, None], 1)[:, :, None]
        alphas = step_alpha if alphas is None else np.concatenate(
            [np.take_along_axis(alphas, parents[:, :, None, None], 1), step_alpha], 2)
        totals, tokens = new_totals, new_tokens.reshape(-1)
        state = _reorder(state, (np.arange(batch_size)[:, None] * k + parents).reshape(-1))
    results = []
    for image in range(batch_size):
        hypotheses = []
        for group in finished[image]:  # each group's n best, by the score it searched by
            ordered = sorted(range(len(group)), key=lambda i: -group[i][0])
            hypotheses += [group[i][1] for i in ordered[:n_best]]
        if groups > 1:  # best first, each caption once
            hypotheses = [h for i, h in enumerate(sorted(hypotheses, key=lambda h: -h["score"]))
                          if all(h["tokens"] != o["tokens"] for o in
                                 sorted(hypotheses, key=lambda h: -h["score"])[:i])]
        hypotheses = hypotheses[:n_best]
        if len(hypotheses) < n_best:
            unfinished = [_hypothesis(words[image, beam], log_probs[image, beam],
                                      _alphas_of(alphas, image, beam, alpha.shape[-1]), None,
                                      length_penalty)
                          for beam in range(k) if np.isfinite(totals[image, beam])]
            unfinished.sort(key=lambda h: -h["score"])
            hypotheses += unfinished[:n_best - len(hypotheses)]
        results.append(hypotheses)
    return results


def _alphas_of(alphas, image, beam, cells):
    return np.zeros((0, cells)) if alphas is None else alphas[image, beam]


