"""Grounded decoding of number words: by how many separate objects of each kind the
grounding head reads.

A grounding head that reads cells (``GroundingConfig.cells``) says of every grid cell
whether an object is there and, if so, its category and attribute values
(``GroundingHead.cell_logits``). Once per image, before the first word, the cells where
it reads an object form a map; its 8-connected components are the objects, each of the
category and attribute values its cells' probabilities add up to most: so count[c] and
count[c, a] (``counts``), and the total. Objects that overlap or touch make one component;
a head that also reads box centres (``GroundingConfig.centres``) counts them apart: each
cell read as a centre (``centre_peaks``) is an object, of the labels read in that cell.

Along a caption each hypothesis keeps the number just stated ("two", "single", ...), the
attribute words said after it, and how many objects it has named. A number word n is
scored by the kind closest to n objects: -PENALTY * min |count - n| over every count[c],
count[c, a] and the objects not named yet (total - named; the total at the start). After
it, an attribute word a by -PENALTY * min_c |count[c, a] - n|; "other" by |total - named
- n| ("... and two other shapes"); and the noun: a category word c by -PENALTY *
|count[c(, a)] - n|, a generic noun ("shapes", "objects") by the total (less those
named after "other"). A category word already named, without a number, loses PENALTY
for each object more than the head reads of its kind that the caption would then have
named, its kind being its category or, more narrowly, its category with an attribute
said before it ("a blue star and a blue star" of one blue star and a red one); an
attribute word already said of a named object, by the objects the head reads with that
value ("a blue star and a blue" of one blue object). A kind named for the first time is
the object words' grounding's business. Once the caption has named as many objects as the
head reads, going on to another ("and", or "a"/"an" right after a noun) loses PENALTY for
each object it would then name beyond them. ``CompiledSearch`` adds ``grounded``
times these scores to the step's log-probabilities.
"""

import numpy as np
from keras import ops

from captioner.metrics.statements import GENERIC, NUMBERS

PENALTY = 3.0  # nats per object that a count word is off by
# a cell is read as a centre above this logit (p > 0.05) where it is the largest of its
# neighbours: trained on two or three centres among 144 cells, the head is sure of few;
# chosen on the hard style's validation split for the default LSTM (objects counted right
# on 189 of 200 images, against 182 at p > 0.12 and 141 at p > 0.5), unseen data left out
CENTRE_LOGIT = -3.0


class NumberWords:
    """The tables of a vocabulary's number, generic and object words, for a grounding head
    that reads cells.

    Args:
        vocabulary: a ``captioner.data.vocab.Vocabulary``.
        grounding: the head's ``GroundingConfig`` (its categories, attributes and words).
        grid_shape: (H, W) of the attention grid.
    """

    def __init__(self, vocabulary, grounding, grid_shape):
        size = len(vocabulary)
        groups = grounding.groups()
        self.categories = len(groups[0][1])
        self.attributes = sum(len(labels) for _, labels in groups[1:])
        self.group_sizes = [len(labels) for _, labels in groups]
        self.grid_shape = tuple(grid_shape)
        self.centres = bool(grounding.centres)
        self.category = np.full(size, -1, np.int32)
        self.attribute = np.full(size, -1, np.int32)
        for word, column in grounding.words:
            if word < size:
                if column < self.categories:
                    self.category[word] = column
                else:
                    self.attribute[word] = column - self.categories
        values = sorted({value for word, value in NUMBERS.items() if word in vocabulary.index})
        self.values = np.asarray(values, np.float32)  # (K,)
        self.number = np.zeros((len(values), size), np.float32)  # (K, V): word v says value k
        self.value = np.full(size, -1.0, np.float32)
        for word, value in NUMBERS.items():
            if word in vocabulary.index:
                self.number[values.index(value), vocabulary.index[word]] = 1.0
                self.value[vocabulary.index[word]] = value
        self.generic = np.zeros(size, np.float32)
        for word in GENERIC:
            if word in vocabulary.index:
                self.generic[vocabulary.index[word]] = 1.0
        self.other = np.zeros(size, np.float32)
        if "other" in vocabulary.index:
            self.other[vocabulary.index["other"]] = 1.0
        # the words that go on to another object: "and", and an article right after a noun
        # ("a red star a blue circle")
        self.joiner = np.zeros(size, np.float32)
        self.article = np.zeros(size, np.float32)
        for word, table in (("and", self.joiner), ("a", self.article), ("an", self.article)):
            if word in vocabulary.index:
                table[vocabulary.index[word]] = 1.0

        self.category_table = _one_hot_rows(self.category, self.categories, size)
        self.attribute_table = _one_hot_rows(self.attribute, self.attributes, size)

    @property
    def active(self):
        """Whether the vocabulary has a number word to judge."""
        return bool(self.number.any())

    def prepare(self, head, features):
        """The counts of each kind (``counts``) of the annotation vectors (N, L, D)."""
        return self.counts(head.cell_logits(features))

    def counts(self, logits):
        """{"count_category" (N, C), "count_attribute" (N, C, A), "count_total" (N,)} of
        the head's cell readings ``logits`` (N, L, 1 + C + A): the connected components
        of the cells where it reads an object are the objects, each of the category (and
        attribute values) its cells' probabilities add up to most."""
        logits = ops.cast(logits, "float32")
        cells = ops.shape(logits)[1]
        if self.centres:  # each cell read as a box centre is an object, of its own labels
            members = ops.eye(cells, dtype="float32")[None] * centre_peaks(
                logits[..., -1], self.grid_shape)[:, :, None]  # (N, L, L)
        else:
            here = ops.cast(logits[..., 0] > 0, "float32")  # (N, L)
            labels = component_labels(here[..., None], self.grid_shape)[..., 0]  # (N, L)
            # (N, L, K): cell l is in component k (label k + 1); label 0, no object, is
            # dropped as a column of its own (not as index -1, which ONNX's OneHot wraps)
            members = ops.one_hot(ops.cast(labels, "int32"), cells + 1,
                                  dtype="float32")[..., 1:]
        found = ops.cast(ops.sum(members, axis=1) > 0, "float32")  # (N, K): K a component
        kinds, start = [], 1
        for size in self.group_sizes:  # per component the labels its cells add up to most
            probabilities = ops.softmax(logits[..., start:start + size], axis=-1)
            summed = ops.einsum("nlk,nlc->nkc", members, probabilities)  # (N, K, size)
            best = ops.top_k(summed, 1)[1][..., 0]  # argmax, as ops.top_k, which exports
            kinds.append(ops.one_hot(best, size, dtype="float32") * found[..., None])
            start += size
        by_category = ops.sum(kinds[0], axis=1)  # (N, C)
        if self.attributes:
            attribute = ops.concatenate(kinds[1:], axis=-1)  # (N, K, A)
            joint = ops.einsum("nkc,nka->nca", kinds[0], attribute)
        else:
            joint = ops.zeros((ops.shape(logits)[0], self.categories, 0), "float32")
        return {"count_category": by_category, "count_attribute": joint,
                "count_total": ops.sum(found, axis=-1)}

    def initial_state(self, batch_size):
        return {"number": ops.full((batch_size,), -1.0, "float32"),
                "counted": ops.full((batch_size,), -1, "int32"),
                "other": ops.zeros((batch_size,), "float32"),
                "named": ops.zeros((batch_size,), "float32"),
                "named_category": ops.zeros((batch_size, self.categories), "float32"),
                "described": ops.zeros((batch_size, self.attributes), "float32"),
                "named_joint": ops.zeros((batch_size, self.categories, self.attributes),
                                         "float32"),
                "after_noun": ops.zeros((batch_size,), "float32")}

    def follow(self, state, tokens):
        """The state after the words ``tokens`` (N,)."""
        value = ops.take(ops.convert_to_tensor(self.value), tokens, axis=0)
        category = ops.take(ops.convert_to_tensor(self.category), tokens, axis=0)
        attribute = ops.take(ops.convert_to_tensor(self.attribute), tokens, axis=0)
        generic = ops.take(ops.convert_to_tensor(self.generic), tokens, axis=0) > 0
        other = ops.take(ops.convert_to_tensor(self.other), tokens, axis=0) > 0
        number, stated = state["number"], state["number"] >= 0
        is_number, is_category = value >= 0, category >= 0
        noun = is_category | generic
        times = ops.where(stated, number, 1.0)  # objects a category word names
        named = state["named"] + ops.where(is_category | (generic & (state["other"] > 0)),
                                           times, 0.0)
        named_now = ops.one_hot(ops.maximum(category, 0), self.categories, dtype="float32") * \
            ops.where(is_category, times, 0.0)[:, None]  # (N, C)
        named_category = state["named_category"] + named_now
        described = state["described"]  # the attribute words since the last noun
        named_joint = state["named_joint"] + named_now[:, :, None] * described[:, None, :]
        if self.attributes:
            said = ops.one_hot(ops.maximum(attribute, 0), self.attributes, dtype="float32")
            described = ops.where(noun[:, None], 0.0, ops.maximum(
                described, said * ops.cast(attribute >= 0, "float32")[:, None]))
        return {"number": ops.where(is_number, value, ops.where(noun, -1.0, number)),
                "counted": ops.where(is_number | noun, -1,
                                     ops.where(stated & (attribute >= 0), attribute,
                                               state["counted"])),
                "other": ops.where(is_number | noun, 0.0,
                                   ops.where(other & stated, 1.0, state["other"])),
                "named": named, "named_category": named_category,
                "described": described, "named_joint": named_joint,
                "after_noun": ops.cast(noun, "float32")}

    def scores(self, state, alpha, memory):
        """(scores (N, V), the state): each count word's score (see the module
        docstring), 0 for the rest."""
        by_category, joint = memory["count_category"], memory["count_attribute"]
        total, named = memory["count_total"], state["named"]
        number, stated = state["number"], state["number"] >= 0
        batch = ops.shape(by_category)[0]
        rest = total - named  # objects not named yet
        candidates = ops.concatenate([by_category, ops.reshape(joint, (batch, -1)),
                                      rest[:, None]], axis=-1)
        values = ops.convert_to_tensor(self.values)
        off = ops.min(ops.abs(candidates[:, :, None] - values[None, None, :]), axis=1)
        scores = ops.matmul(-PENALTY * off, ops.convert_to_tensor(self.number))  # (N, V)
        scores = ops.where(stated[:, None], 0.0, scores)  # no number right after a number
        if self.attributes:  # after "two": an attribute some kind has two of
            attribute_off = ops.min(ops.abs(joint - number[:, None, None]), axis=1)  # (N, A)
            scores = scores + ops.where(stated[:, None], ops.matmul(
                -PENALTY * attribute_off, ops.convert_to_tensor(self.attribute_table)), 0.0)
            counted = state["counted"]
            chosen = ops.sum(joint * ops.one_hot(ops.maximum(counted, 0), self.attributes,
                                                 dtype="float32")[:, None, :], axis=-1)
            of_kind = ops.where((counted >= 0)[:, None], chosen, by_category)
        else:
            of_kind = by_category
        named_category = state["named_category"]  # a kind named again beyond its count
        again = ops.where(named_category > 0,
                          ops.relu(named_category + 1.0 - ops.maximum(by_category, 1.0)), 0.0)
        if self.attributes:  # ... or a description ("a blue star" of one blue star)
            named_joint = state["named_joint"]
            beyond = ops.where(named_joint > 0,
                               ops.relu(named_joint + 1.0 - ops.maximum(joint, 1.0)), 0.0)
            again = ops.maximum(again, ops.max(beyond * state["described"][:, None, :],
                                               axis=-1))
            named_value = ops.sum(named_joint, axis=1)  # (N, A): an attribute named again
            value_again = ops.where(named_value > 0, ops.relu(
                named_value + 1.0 - ops.maximum(ops.sum(joint, axis=1), 1.0)), 0.0)
            scores = scores + ops.where(stated[:, None], 0.0, ops.matmul(
                -PENALTY * value_again, ops.convert_to_tensor(self.attribute_table)))
        noun_off = ops.where(stated[:, None], ops.abs(of_kind - number[:, None]), again)
        scores = scores + ops.matmul(-PENALTY * noun_off,
                                     ops.convert_to_tensor(self.category_table))
        generic_off = ops.where(state["other"] > 0, ops.abs(rest - number),
                                ops.minimum(ops.abs(total - number), ops.abs(rest - number)))
        generic_off = ops.where(stated, generic_off, 0.0)
        other_off = ops.where(stated, ops.abs(rest - number), 0.0)  # "two other": two left
        # going on to another object when every object the head reads is named
        beyond = ops.where((named > 0) & ~stated, ops.relu(named + 1.0 - ops.maximum(total, 1.0)),
                           0.0)
        scores = scores - PENALTY * (
            generic_off[:, None] * ops.convert_to_tensor(self.generic)[None]
            + other_off[:, None] * ops.convert_to_tensor(self.other)[None]
            + beyond[:, None] * (ops.convert_to_tensor(self.joiner)[None]
                                 + state["after_noun"][:, None]
                                 * ops.convert_to_tensor(self.article)[None]))
        return scores, state


def _one_hot_rows(index, rows, size):
    """(rows, size) float32: 1 at [index[v], v] for every v with index[v] >= 0."""
    table = np.zeros((rows, size), np.float32)
    words = np.nonzero(index >= 0)[0]
    table[index[words], words] = 1.0
    return table


def centre_peaks(logits, grid_shape):
    """(N, L) float32, 1 at the cells read as an object's box centre: the centre logit
    (N, L) above ``CENTRE_LOGIT`` and the largest of its 3 x 3 neighbourhood (one object's
    centre read in two neighbouring cells counts once)."""
    height, width = grid_shape
    grid = ops.reshape(logits, (ops.shape(logits)[0], height, width, 1))
    peak = grid >= ops.max_pool(grid, 3, strides=1, padding="same")
    return ops.reshape(ops.cast(peak & (grid > CENTRE_LOGIT), "float32"),
                       ops.shape(logits))


def component_labels(maps, grid_shape):
    """The 8-connected components of each map: maps (N, L, M) of 0/1 over a grid of
    ``grid_shape`` (H, W), row-major -> (N, L, M) float32, each cell of a component the
    largest of its cells' numbers (1 + the cell's index), 0 off the map. Each cell starts
    with its own number, and H + W rounds of a 3 x 3 maximum within the map spread the
    largest over its component."""
    height, width = grid_shape
    maps = ops.cast(maps, "float32")
    grid = ops.reshape(maps, (ops.shape(maps)[0], height, width, ops.shape(maps)[-1]))
    own = ops.reshape(ops.arange(1, height * width + 1, dtype="float32"), (1, height, width, 1))
    labels = own * grid
    for _ in range(height + width):
        labels = ops.max_pool(labels, 3, strides=1, padding="same") * grid
    return ops.reshape(labels, ops.shape(maps))


def components(maps, grid_shape):
    """How many 8-connected components each map of ``maps`` (N, L, M) has: (N, M)."""
    labels = component_labels(maps, grid_shape)
    own = ops.arange(1, ops.shape(maps)[1] + 1, dtype="float32")[None, :, None]
    return ops.sum(ops.cast((labels == own) & (ops.cast(maps, "float32") > 0), "float32"),
                   axis=1)
