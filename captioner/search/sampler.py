"""``Sampler``: the base of every search. It owns the loop, one ``while_loop`` of
``keras.ops`` over the decoder's step, and the hypotheses it returns; a subclass chooses
the next tokens (keras-hub's ``samplers/`` shape).

A search knows nothing about the model. It runs

    step(tokens (N,), state, memory) -> (logits (N, V), state, alpha (N, L))

where ``state`` (changes every step) and ``memory`` (fixed per image, e.g. the annotation
vectors) are nests of arrays whose first axis is N. A sampler that keeps several
hypotheses per image (``width`` > 1) folds them into that axis (N = images x width,
image-major): ``memory`` and ``state`` are tiled once, and ``state`` is reordered with
``keras.tree`` after each step, so all hypotheses of all images advance in one call.

A subclass implements:

    start(batch_size, start_id, end_id, max_length, cells) -> its loop variables (a nest)
    advance(variables, tokens (N,), scores (N, V) log-probabilities, alpha (N, L),
            state, new_state) -> (tokens (N,), state, variables)
    running(variables) -> bool scalar: whether the loop goes on
    outputs(variables) -> fixed-size arrays (what a compiled search returns)
    hypotheses(outputs (NumPy)) -> per image a list of hypotheses, best first

A hypothesis (``hypothesis``)::

    {"tokens": word ids (no <start>/<end>), "log_probs": one per word,
     "alphas": (n_words, L) attention of each word, "log_prob": the total log-probability
     (the <end> word's included when produced), "score": what the ranking used,
     "finished": whether the caption ended with <end> within ``max_length`` words}
"""

import keras
import numpy as np
from keras import ops


def normalised_score(log_prob, length, length_penalty):
    """log_prob / length ** length_penalty: 0 ranks by probability, 1 by its mean per token.

    ``length`` counts the scored tokens: the words, and <end> when the caption has one.
    """
    return log_prob / max(length, 1) ** length_penalty


def hypothesis(tokens, log_probs, alphas, end_log_prob, length_penalty=0.0):
    """A hypothesis dict (see the module docstring); ``end_log_prob`` is None for an
    unfinished caption."""
    scored = list(log_probs) + ([end_log_prob] if end_log_prob is not None else [])
    total = float(np.sum(scored))
    alphas = np.asarray(alphas)  # (n_words, L), also for no words
    return {"tokens": [int(t) for t in tokens], "log_probs": [float(v) for v in log_probs],
            "alphas": alphas.reshape(len(tokens), alphas.shape[-1]), "log_prob": total,
            "score": normalised_score(total, len(scored), length_penalty),
            "finished": end_log_prob is not None}


def tile(nest, times):
    """Each array of ``nest`` repeated ``times`` along its first axis, row by row."""
    return keras.tree.map_structure(lambda x: ops.repeat(x, times, axis=0), nest)


def reorder(nest, rows):
    """Each array of ``nest`` with its first axis taken at ``rows`` (N,)."""
    return keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), nest)


class Sampler:
    """The base of the searches: see the module docstring. ``width``: hypotheses kept per
    image (the beams folded into the batch axis); ``controls``: a
    ``captioner.search.Controls`` applied to every step's scores, or None."""

    width = 1
    controls = None

    def __call__(self, step, state, memory, batch_size, start_id, end_id, max_length):
        """Runs the search over ``step`` for ``batch_size`` images; returns ``outputs``.
        While it is traced, ``end_id``, ``max_length`` and ``cells`` (L) are the
        sampler's attributes, for its hooks."""
        if self.width > 1:
            memory, state = tile(memory, self.width), tile(state, self.width)
        self.end_id, self.max_length = end_id, max_length
        self.cells = cells = ops.shape(memory["annotations"])[1]
        controls = self.controls
        remembers = controls is not None and controls.remembers
        rows = batch_size * self.width
        if remembers:  # each hypothesis' words travel (and are reordered) with its state
            state = {"search": state, "written": controls.start(rows, max_length)}

        def body(tokens, t, state, variables):
            logits, new_state, alpha = step(tokens, state["search"] if remembers else state,
                                            memory)
            scores = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
            if controls is not None:
                written = controls.write(state["written"], t, tokens) if remembers else None
                scores = controls(scores, t, written, end_id)
                if remembers:
                    new_state = {"search": new_state, "written": written}
            tokens, state, variables = self.advance(variables, tokens, scores,
                                                    ops.cast(alpha, "float32"), state, new_state)
            return tokens, t + 1, state, variables

        def more(tokens, t, state, variables):
            return self.running(variables)

        start = (ops.full((rows,), start_id, "int32"), ops.convert_to_tensor(0, "int32"),
                 state, self.start(batch_size, start_id, end_id, max_length, cells))
        *_, variables = ops.while_loop(more, body, start)
        return self.outputs(variables)

    def start(self, batch_size, start_id, end_id, max_length, cells):
        raise NotImplementedError

    def advance(self, variables, tokens, scores, alpha, state, new_state):
        raise NotImplementedError

    def running(self, variables):
        raise NotImplementedError

    def outputs(self, variables):
        raise NotImplementedError

    def hypotheses(self, outputs):
        raise NotImplementedError

    def ranked(self, outputs):
        """``hypotheses`` in ``keras.ops``, for exports: ``outputs`` -> per image its
        ``captions`` best first, {"tokens" (B, N, T) int32 (<end> or 0 after a caption),
        "lengths" (B, N), "log_probs" (B, N, T), "alphas" (B, N, T, L), "finished" (B, N)
        bool, "scores" (B, N) (-inf: no caption in that place)}."""
        raise NotImplementedError


LOWEST = float(np.finfo("float32").min)


def scored(values):
    """Where ``values`` hold a score, in ``keras.ops``: -inf marks none. A score is above
    the lowest float32, so the test holds too where a converter writes the constant -inf
    as the lowest float (LiteRT's does), and ``isfinite`` would take it for a score."""
    return values > LOWEST


def caption_scores(log_probs, lengths, end_log_prob, finished, length_penalty):
    """``normalised_score`` in ``keras.ops``: log_probs (..., T), lengths, end_log_prob and
    finished (...) -> the scores (...)."""
    slots = ops.shape(log_probs)[-1]
    written = ops.arange(slots) < ops.expand_dims(lengths, -1)
    total = ops.sum(ops.where(written, log_probs, 0.0), axis=-1) + ops.where(
        finished, end_log_prob, 0.0)
    scored = ops.cast(lengths, "float32") + ops.cast(finished, "float32")
    return total / ops.maximum(scored, 1.0) ** length_penalty


def gather_ranked(fields, order):
    """Each (B, X, ...) array of ``fields`` at ``order`` (B, N)."""
    def take(values):
        index = ops.reshape(order, ops.shape(order) + (1,) * (len(values.shape) - 2))
        return ops.take_along_axis(values, index, axis=1)
    return {key: take(value) for key, value in fields.items()}

