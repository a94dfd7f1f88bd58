"""Grounded decoding of number words: by how many separate objects of each kind the
grounding head reads.

A grounding head that reads cells (``GroundingConfig.cells``) says of every grid cell
whether an object is there and, if so, its category and attribute values
(``GroundingHead.cell_logits``). Once per image, before the first word, the cells where
it reads an object of category c (and, per attribute value a, of c with a) form a map;
its 8-connected components are the objects of that kind, so count[c] and count[c, a]
(``counts``), and the total is the sum of count[c].

Along a caption each hypothesis keeps the number just stated ("two", "single", ...), the
attribute words said after it, and how many objects it has named. A number word n is
scored by the kind closest to n objects: -PENALTY * min |count - n| over every count[c],
count[c, a], the total and the total less those named ("... and two other shapes"). After
it, an attribute word a by -PENALTY * min_c |count[c, a] - n|, and the noun: a category
word c by -PENALTY * |count[c(, a)] - n|, a generic noun ("shapes", "objects") by the
total (less those named after "other"). A category word without a number loses PENALTY
for each object more than the head reads of its kind that the caption would then have
named ("a blue star and a blue star" of one star). ``CompiledSearch`` adds ``grounded``
times these scores to the step's log-probabilities.
"""

import numpy as np
from keras import ops

from captioner.metrics.statements import GENERIC, NUMBERS

PENALTY = 3.0  # nats per object that a count word is off by


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
        the head's cell readings ``logits`` (N, L, 1 + C + A)."""
        logits = ops.cast(logits, "float32")
        here = ops.cast(logits[..., 0] > 0, "float32")[..., None]  # (N, L, 1)
        parts, start = [], 1
        for size in self.group_sizes:
            best = ops.top_k(logits[..., start:start + size], 1)[1][..., 0]  # argmax; as
            # ops.top_k, which exports to ONNX (ops.argmax's TensorFlow form does not)
            parts.append(ops.one_hot(best, size, dtype="float32"))
            start += size
        category = parts[0] * here  # (N, L, C)
        maps = [category]
        if self.attributes:
            attribute = ops.concatenate(parts[1:], axis=-1)  # (N, L, A)
            joint = category[..., :, None] * attribute[..., None, :]  # (N, L, C, A)
            maps.append(ops.reshape(joint, (ops.shape(joint)[0], ops.shape(joint)[1], -1)))
        found = components(ops.concatenate(maps, axis=-1), self.grid_shape)  # (N, M)
        by_category = found[:, :self.categories]
        joint = ops.reshape(found[:, self.categories:],
                            (ops.shape(found)[0], self.categories, self.attributes))
        return {"count_category": by_category, "count_attribute": joint,
                "count_total": ops.sum(by_category, axis=-1)}

    def initial_state(self, batch_size):
        return {"number": ops.full((batch_size,), -1.0, "float32"),
                "counted": ops.full((batch_size,), -1, "int32"),
                "other": ops.zeros((batch_size,), "float32"),
                "named": ops.zeros((batch_size,), "float32"),
                "named_category": ops.zeros((batch_size, self.categories), "float32")}

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
        named_category = state["named_category"] + ops.one_hot(
            ops.maximum(category, 0), self.categories, dtype="float32") * \
            ops.where(is_category, times, 0.0)[:, None]
        return {"number": ops.where(is_number, value, ops.where(noun, -1.0, number)),
                "counted": ops.where(is_number | noun, -1,
                                     ops.where(stated & (attribute >= 0), attribute,
                                               state["counted"])),
                "other": ops.where(is_number | noun, 0.0,
                                   ops.where(other & stated, 1.0, state["other"])),
                "named": named, "named_category": named_category}

    def scores(self, state, alpha, memory):
        """(scores (N, V), the state): each count word's score (see the module
        docstring), 0 for the rest."""
        by_category, joint = memory["count_category"], memory["count_attribute"]
        total, named = memory["count_total"], state["named"]
        number, stated = state["number"], state["number"] >= 0
        batch = ops.shape(by_category)[0]
        candidates = ops.concatenate([by_category, ops.reshape(joint, (batch, -1)),
                                      total[:, None], (total - named)[:, None]], axis=-1)
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
        noun_off = ops.where(stated[:, None], ops.abs(of_kind - number[:, None]),
                             ops.relu(state["named_category"] + 1.0 - by_category))
        scores = scores + ops.matmul(-PENALTY * noun_off,
                                     ops.convert_to_tensor(self.category_table))
        rest = total - named
        generic_off = ops.where(state["other"] > 0, ops.abs(rest - number),
                                ops.minimum(ops.abs(total - number), ops.abs(rest - number)))
        generic_off = ops.where(stated, generic_off, 0.0)
        scores = scores - PENALTY * generic_off[:, None] * \
            ops.convert_to_tensor(self.generic)[None]
        return scores, state


def _one_hot_rows(index, rows, size):
    """(rows, size) float32: 1 at [index[v], v] for every v with index[v] >= 0."""
    table = np.zeros((rows, size), np.float32)
    words = np.nonzero(index >= 0)[0]
    table[index[words], words] = 1.0
    return table


def components(maps, grid_shape):
    """How many 8-connected components each map has: maps (N, L, M) of 0/1 over a grid
    of ``grid_shape`` (H, W), row-major -> (N, M) float32. Each cell starts with its own
    number; H + W rounds of a 3 x 3 maximum within the map give every cell of a
    component its largest number, and the cells that kept their own are counted."""
    height, width = grid_shape
    maps = ops.cast(maps, "float32")
    grid = ops.reshape(maps, (ops.shape(maps)[0], height, width, ops.shape(maps)[-1]))
    own = ops.reshape(ops.arange(1, height * width + 1, dtype="float32"), (1, height, width, 1))
    labels = own * grid
    for _ in range(height + width):
        labels = ops.max_pool(labels, 3, strides=1, padding="same") * grid
    return ops.sum(ops.cast((labels == own) & (grid > 0), "float32"), axis=(1, 2))
