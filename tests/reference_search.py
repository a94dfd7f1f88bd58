"""The reference searches: greedy and beam search step by step in NumPy, a host round trip
per word. The production searches are the graphs of ``captioner.search`` (compiled whole,
exported); the tests hold them to these, hypothesis for hypothesis.

Both take the step function ``step(tokens (N,), state, memory) -> (logits (N, V), state,
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


def _step(step, tokens, state, memory):
    logits, state, alpha = step(ops.convert_to_tensor(np.asarray(tokens, np.int32)), state, memory)
    scores = log_softmax(ops.convert_to_numpy(logits).astype(np.float64))  # (N, V)
    return scores, state, ops.convert_to_numpy(alpha)


def greedy_search(step, state, memory, batch_size, start_id, end_id, max_length):
    """Picks the most likely word at every step, for the whole batch at once.

    A caption ends at <end> or, unfinished, after ``max_length`` words.
    """
    tokens = np.full((batch_size,), start_id, np.int32)
    words = np.zeros((batch_size, 0), np.int32)
    log_probs, alphas = np.zeros((batch_size, 0)), None
    end_log_prob = [None] * batch_size
    running = np.ones(batch_size, bool)
    for length in range(max_length + 1):
        scores, state, alpha = _step(step, tokens, state, memory)
        tokens = scores.argmax(-1).astype(np.int32)
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



def _reorder(nest, rows):
    rows = ops.convert_to_tensor(rows.astype(np.int32))
    return keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), nest)


def beam_search(step, state, memory, batch_size, start_id, end_id, max_length, beam_size=3,
                n_best=1, length_penalty=0.0, min_length=0):
    """Beam search over all images at once, one step per host round trip; returns the
    ``n_best`` hypotheses per image. The rules (candidates, finishing, stopping, the
    unfinished that fill in) are ``captioner.search.BeamSampler``'s, which this spells out
    step by step."""
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"Need beam_size >= 1 and 1 <= n_best <= beam_size. "
                         f"Received: beam_size={beam_size}, n_best={n_best}")
    k = beam_size
    memory, state = _tile(memory, k), _tile(state, k)
    tokens = np.full((batch_size * k,), start_id, np.int32)
    totals = np.full((batch_size, k), -np.inf)
    totals[:, 0] = 0.0  # the beams start identical: only one of them may expand
    words = np.zeros((batch_size, k, 0), np.int32)
    log_probs = np.zeros((batch_size, k, 0))
    alphas = None
    finished = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, bool)
    best_possible = lambda total: normalised_score(total, max_length + 1, length_penalty)  # noqa: E731
    for length in range(max_length + 1):
        scores, state, alpha = _step(step, tokens, state, memory)
        vocab = scores.shape[-1]
        scores = scores.reshape(batch_size, k, vocab)
        if length < min_length:
            scores[:, :, end_id] = -np.inf
        candidates = (totals[:, :, None] + scores).reshape(batch_size, k * vocab)
        top = np.argsort(-candidates, axis=1, kind="stable")[:, :2 * k]  # (B, 2K)
        alpha = alpha.reshape(batch_size, k, -1)
        parents = np.zeros((batch_size, k), np.int64)
        new_tokens = np.full((batch_size, k), end_id, np.int32)
        new_totals = np.full((batch_size, k), -np.inf)
        for image in range(batch_size):
            live = 0
            for rank, flat in enumerate(top[image]):
                parent, token = divmod(int(flat), vocab)
                total = candidates[image, flat]
                if done[image] or not np.isfinite(total):
                    break
                if token == end_id:
                    if rank < k:
                        finished[image].append(_hypothesis(
                            words[image, parent], log_probs[image, parent],
                            _alphas_of(alphas, image, parent, alpha.shape[-1]),
                            scores[image, parent, end_id],
                            length_penalty))
                elif live < k:
                    parents[image, live], new_tokens[image, live] = parent, token
                    new_totals[image, live] = total
                    live += 1
            ranked = sorted(h["score"] for h in finished[image])[::-1]
            if len(ranked) >= n_best and \
                    best_possible(new_totals[image].max()) <= ranked[n_best - 1]:
                done[image] = True
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
        hypotheses = sorted(finished[image], key=lambda h: -h["score"])[:n_best]
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


