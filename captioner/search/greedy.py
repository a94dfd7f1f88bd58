"""``GreedySampler``: the most likely word at every step."""

from typing import NamedTuple

from keras import ops

from captioner.search.sampler import Sampler, caption_scores, hypothesis


class GreedyState(NamedTuple):
    """The greedy search's loop variables (batch = images)."""
    t: object              # the step: words written so far
    running: object        # (batch,) bool: not yet ended
    words: object          # (batch, max_length + 1) int32, <end> after a caption's end
    log_probs: object      # (batch, max_length + 1) of each word
    alphas: object         # (batch, max_length + 1, L) of each word
    end_log_prob: object   # (batch,) of <end>, where it was written


class GreedySampler(Sampler):
    """Greedy search: the most likely word at every step for the whole batch at once; a
    caption ends at <end> or, unfinished, after ``max_length`` words (the loop runs at most
    ``max_length`` + 1 steps and stops when every caption has ended).

    ``outputs``: "words" (batch, max_length) (<end> after a caption's end), "log_probs"
    (batch, max_length), "alphas" (batch, max_length, L), "lengths" (batch,) words before
    <end>, "end_log_prob" (batch,) and "finished" (batch,) bool. Subclasses change how a
    word is picked (``pick``). ``controls``: a ``captioner.search.Controls`` or None."""

    def __init__(self, controls=None):
        self.controls = controls

    def pick(self, t, scores):
        """The scores (N, V) the next word is the best of."""
        return scores

    def start(self, batch_size, start_id, end_id, max_length, cells):
        slots = max_length + 1  # the last step can only end a caption
        return GreedyState(ops.convert_to_tensor(0, "int32"), ops.ones((batch_size,), "bool"),
                           ops.zeros((batch_size, slots), "int32"),
                           ops.zeros((batch_size, slots)), ops.zeros((batch_size, slots, cells)),
                           ops.zeros((batch_size,)))

    def advance(self, variables, tokens, scores, alpha, state, new_state):
        t, running, words, log_probs, alphas, end_log_prob = variables
        # the first best word; top_k rather than argmax, whose TensorFlow form (a sign-bit
        # test by bitcast) ONNX has no operator for
        tokens = ops.cast(ops.top_k(self.pick(t, scores), 1)[1][:, 0], "int32")
        chosen = ops.take_along_axis(scores, tokens[:, None], axis=1)[:, 0]
        ends = running & (tokens == self.end_id)
        end_log_prob = ops.where(ends, chosen, end_log_prob)
        running = running & ~ends
        here = ops.one_hot(t, self.max_length + 1, dtype="float32")[None]  # (1, slots)
        words = words + ops.cast(here, "int32") * ops.where(running, tokens, self.end_id)[:, None]
        log_probs = log_probs + here * chosen[:, None]
        alphas = alphas + here[:, :, None] * alpha[:, None, :]
        return tokens, new_state, GreedyState(t + 1, running, words, log_probs, alphas,
                                              end_log_prob)

    def running(self, variables):
        return (variables.t < self.max_length + 1) & ops.any(variables.running)

    def outputs(self, variables):
        words, length = variables.words, self.max_length
        batch_size = ops.shape(words)[0]
        lengths = ops.argmax(ops.cast(ops.concatenate(
            [words[:, :length], ops.full((batch_size, 1), self.end_id, "int32")], 1)
            == self.end_id, "int32"), axis=1)
        return {"words": words[:, :length], "log_probs": variables.log_probs[:, :length],
                "alphas": variables.alphas[:, :length], "lengths": ops.cast(lengths, "int32"),
                "end_log_prob": variables.end_log_prob, "finished": ~variables.running}

    def hypotheses(self, outputs):
        results = []
        for row, length in enumerate(outputs["lengths"]):
            end = float(outputs["end_log_prob"][row]) if outputs["finished"][row] else None
            results.append([hypothesis(outputs["words"][row, :length],
                                       outputs["log_probs"][row, :length],
                                       outputs["alphas"][row, :length], end)])
        return results

    def ranked(self, outputs):
        scores = caption_scores(outputs["log_probs"], outputs["lengths"],
                                outputs["end_log_prob"], outputs["finished"], 0.0)
        return {"tokens": outputs["words"][:, None], "lengths": outputs["lengths"][:, None],
                "log_probs": outputs["log_probs"][:, None], "alphas": outputs["alphas"][:, None],
                "finished": outputs["finished"][:, None], "scores": scores[:, None]}
