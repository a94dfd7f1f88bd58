"""``Controls``: what every search may not, or should not, write, applied to each step's
log-probabilities before the search chooses (Hugging Face's "logits processors"):

    banned               words never written (<pad>, <start> and, unless allowed, <unk>)
    min_length           <end> is not allowed before this many words
    no_repeat_ngram      N: a word that would repeat an N-gram of the caption is not allowed
                         (N = 3 is self-critical.pytorch's trigram block)
    repetition_penalty   theta: a word the caption already has keeps p ** theta of its
                         probability (CTRL's penalty on log-probabilities; 1 is off)

The distribution is renormalised after them, so the search's log-probabilities are those of
the distribution it chose from. The words a caption has written are kept in the search's
state (``start``/``write``), which beam search reorders with the rest: each hypothesis is
judged by its own words. Everything is ``keras.ops``: it compiles with the search and
exports with it.
"""

import dataclasses

import numpy as np
from keras import ops


@dataclasses.dataclass(frozen=True)
class Controls:
    """See the module docstring."""
    banned: tuple = ()
    min_length: int = 0
    no_repeat_ngram: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "banned", tuple(sorted({int(i) for i in self.banned})))

    @property
    def remembers(self):
        """Whether the controls read the words a caption has written."""
        return self.no_repeat_ngram > 0 or self.repetition_penalty != 1.0

    def start(self, rows, max_length):
        """The written words of ``rows`` captions (rows, max_length + 1): none yet."""
        return ops.zeros((rows, max_length + 1), "int32")

    def write(self, written, t, tokens):
        """``written`` with ``tokens`` (rows,), the word of step t - 1, in place t - 1 (at
        t = 0, the tokens are <start> and nothing is written)."""
        slots = ops.shape(written)[1]
        here = ops.cast(ops.arange(slots) == t - 1, "int32")[None]  # none at t = 0
        return written + here * tokens[:, None]

    def __call__(self, scores, t, written, end_id):
        """The controlled log-probabilities (rows, V) of step t (t words written)."""
        vocab = scores.shape[-1]
        words = ops.arange(vocab)
        blocked = ops.zeros((1, vocab), "bool")
        if self.banned:
            blocked = blocked | np.isin(np.arange(vocab), self.banned)[None]
        if self.min_length:
            blocked = blocked | ((words == end_id) & (t < self.min_length))[None]
        if self.remembers:
            slots = ops.shape(written)[1]
            exists = ops.arange(slots)[None] < t  # (1, slots): the words written so far
            if self.repetition_penalty != 1.0:
                had = ops.where(exists, written, -1)
                seen = ops.any(had[:, :, None] == words[None, None], axis=1)  # (rows, V)
                scores = ops.where(seen, scores * self.repetition_penalty, scores)
            if self.no_repeat_ngram:
                blocked = blocked | self.repeats(written, t, exists, words)
        scores = ops.where(blocked, -np.inf, scores)
        return ops.log_softmax(scores, axis=-1)

    def repeats(self, written, t, exists, words):
        """(rows, V): the words that would end an N-gram the caption already has, that is
        word j wherever the N - 1 words before it equal the caption's last N - 1."""
        n, slots = self.no_repeat_ngram, ops.shape(written)[1]
        rows = ops.shape(written)[0]
        match = exists & (ops.arange(slots)[None] >= n - 1)
        for back in range(1, n):
            last = ops.take_along_axis(written, ops.full((rows, 1), ops.maximum(t - back, 0),
                                                         "int32"), axis=1)  # (rows, 1)
            before = ops.concatenate([ops.full((rows, back), -1, "int32"),
                                      written[:, :slots - back]], axis=1)  # word j - back
            match = match & (before == last)
        ending = ops.where(match, written, -1)  # (rows, slots): the words to block
        return ops.any(ending[:, :, None] == words[None, None], axis=1)
