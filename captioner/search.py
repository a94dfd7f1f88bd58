"""Decoding: turn a decoder step function into captions (greedy and beam search).

The search functions know nothing about the model. They take

    step(tokens (N,), state, memory) -> (logits (N, V), state, alpha (N, L))

where ``state`` (changes every step) and ``memory`` (fixed per image, e.g. the annotation
vectors) are nests of arrays whose first axis is N. Beam search folds the beams into that
axis (N = images x beams, image-major), tiles ``memory`` once and reorders ``state`` with
``keras.tree`` after each step, so all hypotheses of all images advance in one call.

Both return, per image, a list of hypotheses, best first::

    {"tokens": word ids (no <start>/<end>), "log_probs": one per word,
     "alphas": (n_words, L) attention of each word, "log_prob": the total log-probability
     (the <end> word's included when produced), "score": what the ranking used,
     "finished": whether the caption ended with <end> within ``max_length`` words}
"""

import keras
import numpy as np
from keras import ops


def log_softmax(logits):
    """Numerically stable log-softmax over the last axis of a NumPy array."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _hypothesis(tokens, log_probs, alphas, end_log_prob, length_penalty):
    """A hypothesis dict; ``end_log_prob`` is None for an unfinished caption."""
    scored = list(log_probs) + ([end_log_prob] if end_log_prob is not None else [])
    total = float(np.sum(scored))
    alphas = np.asarray(alphas)  # (n_words, L), also for no words
    return {"tokens": [int(t) for t in tokens], "log_probs": [float(v) for v in log_probs],
            "alphas": alphas.reshape(len(tokens), alphas.shape[-1]), "log_prob": total,
            "score": normalised_score(total, len(scored), length_penalty),
            "finished": end_log_prob is not None}


def normalised_score(log_prob, length, length_penalty):
    """log_prob / length ** length_penalty: 0 ranks by probability, 1 by its mean per token.

    ``length`` counts the scored tokens: the words, and <end> when the caption has one.
    """
    return log_prob / max(length, 1) ** length_penalty


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


def _tile(nest, times):
    return keras.tree.map_structure(lambda x: ops.repeat(x, times, axis=0), nest)


def _reorder(nest, rows):
    rows = ops.convert_to_tensor(rows.astype(np.int32))
    return keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), nest)


def beam_search(step, state, memory, batch_size, start_id, end_id, max_length, beam_size=3,
                n_best=1, length_penalty=0.0, min_length=0):
    """Beam search over all images at once; returns the ``n_best`` hypotheses per image.

    Args:
        beam_size: K, hypotheses kept per image. K = 1 with length_penalty 0 is greedy
            search, exactly.
        n_best: hypotheses returned per image (at most K), best first.
        length_penalty: alpha of ``normalised_score``; 0 ranks by total log-probability,
            which favours short captions, larger values favour longer ones.
        min_length: <end> is not allowed before this many words.
        max_length: a caption has at most this many words.

    At each step every live hypothesis is extended by every word; of the best 2K
    candidates per image, those ending in <end> that rank among the best K are finished
    (as in fairseq), and the best K others stay live. An image is done when no live
    hypothesis can still beat its n-th best finished one: a live hypothesis' log-probability
    only falls, and its length is at most ``max_length`` + 1, which bounds its final score.
    (Stopping at K finished hypotheses, as fairseq does, misses longer captions that win
    once the length penalty is on.) If fewer than ``n_best`` finish within ``max_length``
    words, the best unfinished ones fill the list (``finished: False``): there is always
    an answer.
    """
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
            if len(ranked) >= n_best and best_possible(new_totals[image].max()) <= ranked[n_best - 1]:
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


def greedy_graph(step, state, memory, batch_size, start_id, end_id, max_length, noise=None):
    """Greedy search as one graph of ``keras.ops`` (``while_loop`` over at most
    ``max_length`` + 1 steps, stopping when every caption has ended): what
    ``greedy_search`` computes, without a round trip to the host per word, so that it
    compiles whole (``captioner.models.decoding.CompiledSearch``) and exports.

    ``noise``: Gumbel noise (batch, max_length + 1, V), added to each step's
    log-probabilities before the best word is picked: the Gumbel-max trick, so each word
    is a sample of the model's distribution (self-critical training draws its captions
    so; the noise comes from the caller, which makes the samples repeatable on any
    backend). "log_probs" stay the model's own.

    Returns a dict of arrays: "words" (batch, max_length) (<end> after a caption's end),
    "log_probs" (batch, max_length), "alphas" (batch, max_length, L), "lengths" (batch,)
    words before <end>, "end_log_prob" (batch,) and "finished" (batch,) bool.
    ``greedy_hypotheses`` turns them into ``greedy_search``'s hypotheses.
    """
    cells = ops.shape(memory["annotations"])[1]
    slots = max_length + 1  # the last step can only end a caption

    def body(t, tokens, state, running, words, log_probs, alphas, end_log_prob):
        logits, state, alpha = step(tokens, state, memory)
        scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        pick = scores if noise is None else scores + ops.take(noise, t, axis=1)
        # the first best word; top_k rather than argmax, whose TensorFlow form (a sign-bit
        # test by bitcast) ONNX has no operator for
        tokens = ops.cast(ops.top_k(pick, 1)[1][:, 0], "int32")
        chosen = ops.take_along_axis(scores, tokens[:, None], axis=1)[:, 0]
        ends = running & (tokens == end_id)
        end_log_prob = ops.where(ends, chosen, end_log_prob)
        running = running & ~ends
        here = ops.one_hot(t, slots, dtype="float32")[None]  # (1, slots): this word's slot
        words = words + ops.cast(here, "int32") * ops.where(running, tokens, end_id)[:, None]
        log_probs = log_probs + here * chosen[:, None]
        alphas = alphas + here[:, :, None] * ops.cast(alpha, "float32")[:, None, :]
        return t + 1, tokens, state, running, words, log_probs, alphas, end_log_prob

    def more(t, tokens, state, running, *rest):
        return (t < slots) & ops.any(running)

    start = (ops.convert_to_tensor(0, "int32"),
             ops.full((batch_size,), start_id, "int32"), state,
             ops.ones((batch_size,), "bool"),
             ops.zeros((batch_size, slots), "int32"), ops.zeros((batch_size, slots)),
             ops.zeros((batch_size, slots, cells)), ops.zeros((batch_size,)))
    _, _, _, running, words, log_probs, alphas, end_log_prob = ops.while_loop(more, body, start)
    lengths = ops.argmax(ops.cast(ops.concatenate(
        [words[:, :max_length], ops.full((batch_size, 1), end_id, "int32")], 1) == end_id,
        "int32"), axis=1)
    return {"words": words[:, :max_length], "log_probs": log_probs[:, :max_length],
            "alphas": alphas[:, :max_length], "lengths": ops.cast(lengths, "int32"),
            "end_log_prob": end_log_prob, "finished": ~running}


def greedy_hypotheses(outputs):
    """``greedy_graph``'s arrays (NumPy) -> per image ``[hypothesis]``, as
    ``greedy_search`` returns them."""
    results = []
    for row, length in enumerate(np.asarray(outputs["lengths"])):
        end = float(outputs["end_log_prob"][row]) if outputs["finished"][row] else None
        results.append([_hypothesis(outputs["words"][row, :length],
                                    outputs["log_probs"][row, :length],
                                    outputs["alphas"][row, :length], end, 0.0)])
    return results


def beam_graph(step, state, memory, batch_size, start_id, end_id, max_length, beam_size=3,
               n_best=1, length_penalty=0.0, min_length=0):
    """``beam_search`` as one graph of ``keras.ops``: the same candidates, the same finished
    hypotheses (the best ``n_best`` are kept, in the order ``beam_search`` ranks them), the
    same stop, in a ``while_loop`` of fixed-size arrays. ``beam_hypotheses`` turns its
    arrays into ``beam_search``'s hypotheses."""
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"Need beam_size >= 1 and 1 <= n_best <= beam_size. "
                         f"Received: beam_size={beam_size}, n_best={n_best}")
    k, n, words_max = beam_size, n_best, max_length
    cells = ops.shape(memory["annotations"])[1]
    memory, state = _tile(memory, k), _tile(state, k)
    inf = float("inf")

    def take(values, index, axis=1):  # values (B, X, ...), index (B, Y): rows per image
        index = ops.reshape(index, ops.shape(index)
                            + (1,) * (len(values.shape) - len(index.shape)))
        return ops.take_along_axis(values, index, axis=axis)

    def body(t, stopped, tokens, state, totals, words, log_probs, alphas, done,
             f_score, f_words, f_log_probs, f_alphas, f_length, f_total):
        logits, new_state, alpha = step(tokens, state, memory)
        scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        vocab = ops.shape(scores)[-1]
        scores = ops.reshape(scores, (batch_size, k, vocab))
        blocked = ops.cast(ops.one_hot(end_id, vocab), "bool") & (t < min_length)
        scores = ops.where(blocked[None, None], -inf, scores)
        alpha = ops.reshape(ops.cast(alpha, "float32"), (batch_size, k, cells))
        candidates = ops.reshape(totals[:, :, None] + scores, (batch_size, k * vocab))
        total, flat = ops.top_k(candidates, 2 * k)  # best first, ties by index
        parent, token = flat // vocab, flat % vocab
        rank = ops.arange(2 * k)[None]
        valid = ops.isfinite(total) & ~done[:, None]
        ends = valid & (token == end_id)
        # the finished: <end> among the best K candidates
        finish = ends & (rank < k)
        end_score = total / ops.cast(t + 1, "float32") ** length_penalty
        pool_score = ops.concatenate([f_score, ops.where(finish, end_score, -inf)], 1)
        pool_score, chosen = ops.top_k(pool_score, n)
        f_words = take(ops.concatenate([f_words, take(words, parent)], 1), chosen)
        f_log_probs = take(ops.concatenate([f_log_probs, take(log_probs, parent)], 1), chosen)
        f_alphas = take(ops.concatenate([f_alphas, take(alphas, parent)], 1), chosen)
        f_length = take(ops.concatenate(
            [f_length, ops.full((batch_size, 2 * k), t, "int32")], 1), chosen)
        f_total = take(ops.concatenate([f_total, total], 1), chosen)
        # the live: the best K candidates that do not end
        live = valid & (token != end_id)
        order = ops.argsort(ops.where(live, rank, 2 * k + rank), axis=1)[:, :k]
        kept = take(live, order)
        parents = ops.where(kept, take(parent, order), 0)
        new_tokens = ops.where(kept, take(token, order), end_id)
        new_totals = ops.where(kept, take(total, order), -inf)
        best_possible = ops.max(new_totals, axis=1) / float(words_max + 1) ** length_penalty
        nth = pool_score[:, n - 1]
        done = done | (ops.isfinite(nth) & (best_possible <= nth))
        stopped = ops.all(done) | (t == words_max)
        # extend the live hypotheses (not on the last step: beam_search stops first)
        here = ops.one_hot(t, words_max, dtype="float32")[None, None]  # (1, 1, T)
        word_log_probs = take(take(scores, parents), new_tokens[:, :, None], axis=2)[:, :, 0]
        extended = (
            take(words, parents) + ops.cast(here, "int32") * new_tokens[:, :, None],
            take(log_probs, parents) + here * word_log_probs[:, :, None],
            take(alphas, parents) + here[..., None] * take(alpha, parents)[:, :, None, :])
        rows = ops.reshape(ops.arange(batch_size)[:, None] * k + parents, (-1,))
        new_state = keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), new_state)
        keep = lambda old, new: ops.where(  # noqa: E731
            ops.reshape(stopped, (1,) * len(new.shape)), old, new)
        words, log_probs, alphas = (keep(o, e) for o, e in zip((words, log_probs, alphas),
                                                                extended))
        state = keras.tree.map_structure(keep, state, new_state)
        totals = keep(totals, new_totals)
        tokens = keep(tokens, ops.reshape(new_tokens, (-1,)))
        return (ops.where(stopped, t, t + 1), stopped, tokens, state, totals, words,
                log_probs, alphas, done, pool_score, f_words, f_log_probs, f_alphas,
                f_length, f_total)

    first = ops.where(ops.arange(k)[None] == 0, 0.0, -inf) * ops.ones((batch_size, 1))
    start = (ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(False),
             ops.full((batch_size * k,), start_id, "int32"), state, first,
             ops.zeros((batch_size, k, words_max), "int32"),
             ops.zeros((batch_size, k, words_max)), ops.zeros((batch_size, k, words_max, cells)),
             ops.zeros((batch_size,), "bool"), ops.full((batch_size, n), -inf),
             ops.zeros((batch_size, n, words_max), "int32"),
             ops.zeros((batch_size, n, words_max)), ops.zeros((batch_size, n, words_max, cells)),
             ops.zeros((batch_size, n), "int32"), ops.zeros((batch_size, n)))
    (t, _, _, _, totals, words, log_probs, alphas, _, f_score, f_words, f_log_probs, f_alphas,
     f_length, f_total) = ops.while_loop(lambda t, stopped, *rest: ~stopped, body, start)
    return {"live_length": t, "totals": totals, "words": words, "log_probs": log_probs,
            "alphas": alphas, "finished_score": f_score, "finished_words": f_words,
            "finished_log_probs": f_log_probs, "finished_alphas": f_alphas,
            "finished_length": f_length, "finished_total": f_total}


def beam_hypotheses(outputs, n_best, length_penalty=0.0):
    """``beam_graph``'s arrays (NumPy) -> per image the ``n_best`` hypotheses, best first,
    as ``beam_search`` returns them (the unfinished fill in where too few ended)."""
    results = []
    live_length = int(outputs["live_length"])
    for image in range(len(outputs["totals"])):
        hypotheses = []
        for slot in range(n_best):
            if not np.isfinite(outputs["finished_score"][image, slot]):
                break
            length = int(outputs["finished_length"][image, slot])
            log_probs = outputs["finished_log_probs"][image, slot, :length]
            end = float(outputs["finished_total"][image, slot]) - float(np.sum(log_probs))
            hypotheses.append(_hypothesis(outputs["finished_words"][image, slot, :length],
                                          log_probs,
                                          outputs["finished_alphas"][image, slot, :length],
                                          end, length_penalty))
        if len(hypotheses) < n_best:
            unfinished = [_hypothesis(outputs["words"][image, beam, :live_length],
                                      outputs["log_probs"][image, beam, :live_length],
                                      outputs["alphas"][image, beam, :live_length], None,
                                      length_penalty)
                          for beam in range(outputs["totals"].shape[1])
                          if np.isfinite(outputs["totals"][image, beam])]
            unfinished.sort(key=lambda h: -h["score"])
            hypotheses += unfinished[:n_best - len(hypotheses)]
        results.append(hypotheses)
    return results
