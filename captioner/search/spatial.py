"""Grounded decoding of position and relation words: by the places the model looked at.

Every step of a decoder says where it looked (alpha, a distribution over the grid). The
attended place of a step is its centroid, sum_l alpha_l (x_l, y_l), in image fractions
(0 to 1 across and down). Two places suffice to judge the words the statement checks
(``captioner.metrics.statements``) judge by boxes:

- the **anchor**: the place attended for the last object word (a word that names one of
  the grounding head's categories), kept in the search state;
- the place attended at the current step. Attention supervision has the words of a
  relation phrase ("to the left of", "above") look at the object the relation is judged
  against (``captioner.data.regions``), so here it is that object's place.

A word that opens position phrases right after an object word in the training captions
("at" of "a star at the top", ``GroundingConfig.openers``) is scored, right after one,
by the best of the thirds its phrases claimed: 0 where the anchor's third is one of
them. A position word ("left", "top", "middle", in a phrase opened by "on", "at" or "in") is
scored by the anchor's third of the image: per axis, the margins m_left = 1/3 - x,
m_right = x - 2/3, m_middle = min(x - 1/3, 2/3 - x) (positive for the third the place is
in) and the word's score SHARPNESS * (m_word - max m) is 0 for the true third and falls
by SHARPNESS per image width beyond it. A relation word ("above", "below", "under",
"left"/"right" after "to the", and "to" itself right after an object word, which commits
to left or right) is scored by the offset (dx, dy) from the anchor to the current place,
with the statement checks' dominant-axis rule: the margins are left: dx, right: -dx,
above: dy, below: -dy, and the score SHARPNESS * (m_word - max m). A word that opens a
relation ("to", "above", "below") also loses TOGETHER * SHARPNESS * (APART - max(|dx|,
|dy|)) where the two places are closer than APART (10 nats for one place): a relation of
an object to itself (the model still looking at the first object) is no relation; the
direction word of a phrase already opened ("left" of "to the") does not, so the phrase
is finished either way.

``CompiledSearch`` adds ``grounded`` times these scores to the step's log-probabilities,
as it adds the grounding head's object word scores; words that state nothing score 0.
What phrase a word is in is followed per hypothesis from the words decoded (``mode``).
"""

import numpy as np
from keras import ops

SHARPNESS = 20.0  # nats per image width (or height) a place lies beyond the word's region
OPENING = 0.5  # an opener is judged where at least this share of its uses opened a place
APART = 0.1  # a relation needs its two places this far apart (image fractions, either axis)
TOGETHER = 5.0  # how much steeper than SHARPNESS a relation loses below APART

NONE, AFTER_OBJECT, POSITION, RELATION = 0, 1, 2, 3  # what the last words opened
OTHER, OBJECT, POSITION_OPENER, TO, KEEP = 0, 1, 2, 3, 4  # the kinds of words

# score columns: what each word may state, and in which mode it states it
COLUMNS = ("position_left", "position_right", "position_top", "position_bottom",
           "position_middle", "relation_left", "relation_right", "relation_above",
           "relation_below", "relation_across")
WORDS = {"left": ("position_left", "relation_left"),
         "right": ("position_right", "relation_right"),
         "top": ("position_top",), "upper": ("position_top",),
         "bottom": ("position_bottom",), "lower": ("position_bottom",),
         "middle": ("position_middle",), "center": ("position_middle",),
         "centre": ("position_middle",),
         "above": ("relation_above",), "over": ("relation_above",),
         "below": ("relation_below",), "under": ("relation_below",),
         "beneath": ("relation_below",), "underneath": ("relation_below",),
         "to": ("relation_across",)}
OPENERS = ("on", "at", "in")
KEPT = ("the", "corner", "side", "part", "half", "left", "right", "top", "upper", "bottom",
        "lower", "middle", "center", "centre")


class SpatialWords:
    """The tables of a vocabulary's position and relation words.

    Args:
        vocabulary: a ``captioner.data.vocab.Vocabulary``.
        object_words: ids of the words that name an object category (the grounding
            head's category words).
        grid_shape: (H, W) of the attention grid.
        openers: ``GroundingConfig.openers``: the words that open position phrases after
            an object word in the training captions; those that mostly do (a share of at
            least ``OPENING``) are judged by whether the place is in a third a phrase
            they opened claimed.
    """

    def __init__(self, vocabulary, object_words, grid_shape, openers=()):
        size = len(vocabulary)
        self.kind = np.zeros(size, np.int32)
        for word in KEPT:
            if word in vocabulary.index:
                self.kind[vocabulary.index[word]] = KEEP
        for word in OPENERS:
            if word in vocabulary.index:
                self.kind[vocabulary.index[word]] = POSITION_OPENER
        if "to" in vocabulary.index:
            self.kind[vocabulary.index["to"]] = TO
        self.kind[np.asarray(list(object_words), np.int64)] = OBJECT
        self.table = np.zeros((len(COLUMNS), size), np.float32)
        for word, columns in WORDS.items():
            if word in vocabulary.index:
                for column in columns:
                    self.table[COLUMNS.index(column), vocabulary.index[word]] = 1.0
        openers = [(word, flags) for word, share, flags in openers
                    if share >= OPENING and word < size]
        self.opener_table = np.zeros((len(openers), size), np.float32)
        self.opener_flags = np.zeros((len(openers), 9), bool)
        for row, (word, flags) in enumerate(openers):
            self.opener_table[row, word] = 1.0
            self.opener_flags[row] = np.asarray(flags, bool)
        height, width = grid_shape
        rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        self.places = np.stack([(cols.ravel() + 0.5) / width, (rows.ravel() + 0.5) / height],
                               axis=-1).astype(np.float32)  # (L, 2): x, y of each cell

    @property
    def active(self):
        """Whether the vocabulary has any word to judge."""
        return bool(self.table.any() or self.opener_table.any())

    def prepare(self, head, features):
        """What the search keeps per image: nothing (the places are read per step)."""
        return {}

    def initial_state(self, batch_size):
        """The search state: the anchor and its presence, the mode, the last place."""
        return {"anchor": ops.zeros((batch_size, 2), "float32"),
                "anchored": ops.zeros((batch_size,), "float32"),
                "mode": ops.zeros((batch_size,), "int32"),
                "place": ops.zeros((batch_size, 2), "float32")}

    def follow(self, state, tokens):
        """The state after the words ``tokens`` (N,), decoded at the last step, whose
        attended place is state["place"]."""
        kind = ops.take(ops.convert_to_tensor(self.kind), tokens, axis=0)
        mode = state["mode"]
        is_object = kind == OBJECT
        mode = ops.where(is_object, AFTER_OBJECT,
                         ops.where(kind == POSITION_OPENER, POSITION,
                                   ops.where(kind == TO,
                                             ops.where(mode == AFTER_OBJECT, RELATION, NONE),
                                             ops.where(kind == KEEP, mode, NONE))))
        anchored = ops.where(is_object, 1.0, state["anchored"])
        anchor = ops.where(is_object[:, None], state["place"], state["anchor"])
        return {**state, "anchor": anchor, "anchored": anchored, "mode": mode}

    def place(self, alpha):
        """The attended place (N, 2) of attention ``alpha`` (N, L)."""
        return ops.matmul(ops.cast(alpha, "float32"), ops.convert_to_tensor(self.places))

    def scores(self, state, alpha, memory=None):
        """(scores (N, V), the state with this step's place): each position or relation
        word's score (see the module docstring), 0 for every other word."""
        place = self.place(alpha)
        x, y = state["anchor"][:, 0], state["anchor"][:, 1]

        def thirds(value):
            margins = ops.stack([1.0 / 3.0 - value, value - 2.0 / 3.0,
                                 ops.minimum(value - 1.0 / 3.0, 2.0 / 3.0 - value)], axis=-1)
            return margins - ops.max(margins, axis=-1, keepdims=True)  # low, high, middle

        across, down = thirds(x), thirds(y)
        offset = place - state["anchor"]
        dx, dy = offset[:, 0], offset[:, 1]
        relations = ops.stack([dx, -dx, dy, -dy], axis=-1)
        apart = TOGETHER * ops.minimum(ops.maximum(ops.abs(dx), ops.abs(dy)) - APART, 0.0)
        relations = relations - ops.max(relations, axis=-1, keepdims=True)
        # the words that open a relation lose where it would be one object's to itself;
        # "left" of a committed "to the" does not (it would leave the phrase unfinished)
        opening = relations + apart[:, None]
        columns = ops.stack([across[:, 0], across[:, 1], down[:, 0], down[:, 1],
                             across[:, 2] + down[:, 2],
                             relations[:, 0], relations[:, 1], opening[:, 2], opening[:, 3],
                             ops.maximum(opening[:, 0], opening[:, 1])], axis=-1)
        mode, anchored = state["mode"], state["anchored"] > 0
        active = ops.stack(
            [mode == POSITION] * 5 + [mode == RELATION] * 2 + [mode != POSITION] * 2
            + [mode == AFTER_OBJECT], axis=-1) & anchored[:, None]
        columns = ops.where(active, columns, 0.0) * SHARPNESS
        scores = ops.matmul(columns, ops.convert_to_tensor(self.table))
        if len(self.opener_flags):  # "at" of "at the top ...": the place is in such a third
            thirds_scores = ops.reshape(across[:, :, None] + down[:, None, :], (-1, 1, 9))
            best = ops.max(ops.where(ops.convert_to_tensor(self.opener_flags)[None],
                                     thirds_scores, -1e9), axis=-1)  # (N, openers)
            best = ops.where((mode == AFTER_OBJECT)[:, None] & anchored[:, None], best, 0.0)
            scores = scores + ops.matmul(best * SHARPNESS,
                                         ops.convert_to_tensor(self.opener_table))
        return scores, {**state, "place": place}
