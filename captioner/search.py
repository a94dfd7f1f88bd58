"""Decoding: turn a decoder step function into captions.

The search functions know nothing about the model. They take

    step(tokens (batch,), state) -> (logits (batch, V), state, alpha (batch, L))

where ``state`` is any nest of arrays whose first axis is the batch, and return, per image,
a list of hypotheses ``{"tokens", "log_probs", "alphas", "score"}``: the word ids (without
<start> and <end>), the log-probability of each word, the attention map of each word
(n_words, L) and the hypothesis' score.
"""

import numpy as np
from keras import ops


def log_softmax(logits):
    """Numerically stable log-softmax over the last axis of a NumPy array."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy_search(step, state, batch_size, start_id, end_id, max_length):
    """Picks the most likely word at every step, for the whole batch at once.

    A caption ends at <end> or after ``max_length`` words. The score is the sum of the
    words' log-probabilities (the <end> word included when it was produced).
    """
    tokens = np.full((batch_size,), start_id, np.int32)
    finished = np.zeros(batch_size, bool)
    words, log_probs, alphas = [], [], []
    ended_with_end = np.zeros(batch_size, bool)
    end_log_prob = np.zeros(batch_size)
    for _ in range(max_length + 1):
        logits, state, alpha = step(ops.convert_to_tensor(tokens), state)
        scores = log_softmax(ops.convert_to_numpy(logits).astype(np.float64))
        tokens = scores.argmax(-1).astype(np.int32)
        chosen = scores[np.arange(batch_size), tokens]
        stopping = ~finished & (tokens == end_id)
        end_log_prob[stopping] = chosen[stopping]
        ended_with_end |= stopping
        finished |= stopping
        words.append(np.where(finished, end_id, tokens))
        log_probs.append(chosen)
        alphas.append(ops.convert_to_numpy(alpha))
        if finished.all() or len(words) > max_length:
            break
    words, log_probs, alphas = np.stack(words, 1), np.stack(log_probs, 1), np.stack(alphas, 1)
    results = []
    for row in range(batch_size):
        length = int(np.argmax(words[row] == end_id)) if (words[row] == end_id).any() else max_length
        length = min(length, max_length)
        word_log_probs = log_probs[row, :length]
        score = float(word_log_probs.sum() + end_log_prob[row])
        results.append([{"tokens": words[row, :length].tolist(),
                         "log_probs": word_log_probs.tolist(),
                         "alphas": alphas[row, :length], "score": score}])
    return results
