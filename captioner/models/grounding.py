"""The grounding head: what is at the place a word looked?

At each step the head reads the attended place, r_t = sum_l alpha_tl a_l (the attention's
expected read of the encoder's annotation vectors; with hard attention the expectation of
the cell it samples), and classifies it: the object category there and each attribute
(colour, size, ...), one softmax per group of labels (``GroundingConfig.groups``). It sees
only r_t, not the decoder's state, so it tells what the image holds at that place, apart
from what the language model expects to come next.

Trained (``grounding_loss``) at the words that name an annotated object, against that
object's category and attributes (``captioner.data.regions.WordRegions``); the attention
is not moved by it (its gradient stops at alpha; attention supervision moves attention).

A head with ``GroundingConfig.cells`` also reads every grid cell on its own
(``cell_logits``): whether an object is there, and its labels, trained (``cell_loss``)
on the cells each box covers, and with ``GroundingConfig.centres`` also which cells hold
an object's box centre; grounded decoding counts the objects of each kind by it
(``captioner.search.counting``).

Grounded decoding (``captioner.search.CompiledSearch(grounded=w)``) adds, to the
log-probability of every word that names a category or an attribute value, w times the
head's log-probability of that label at the place attended for that word relative to its
most likely label there (``word_scores``): a word that names what the head reads loses
nothing, one that names something else loses the more the surer the head is, so an object
word must agree with what is there, and a caption whose object words cannot be grounded
turns to another word or ends sooner rather than inventing one.
"""

import keras
import numpy as np
from keras import ops

from captioner.config import GroundingConfig


@keras.saving.register_keras_serializable(package="captioner")
class GroundingHead(keras.layers.Layer):
    """Reads the attended place of each step and classifies it.

    Args:
        vocab_size: V, for the table of the words that name a label.
        config: a ``GroundingConfig`` (or its dict) with at least one category.

    Call arguments:
        alphas: (batch, T, L) or (batch, L) attention weights.
        features: (batch, L, D) annotation vectors.

    Returns:
        logits (batch, T, C) or (batch, C), C the labels of every group side by side.
    """

    def __init__(self, vocab_size, config=None, **kwargs):
        super().__init__(**kwargs)
        if config is None or isinstance(config, dict):
            config = GroundingConfig.from_dict(config or {}, "grounding config")
        self.vocab_size, self.grounding_config = vocab_size, config
        self.sizes = [len(labels) for _, labels in config.groups()]
        self.hidden = keras.layers.Dense(config.units, activation="relu", name="hidden")
        self.classes = keras.layers.Dense(sum(self.sizes), name="classes")
        self.objectness = keras.layers.Dense(1, name="objectness") if config.cells else None
        if config.centres:  # its own layers, on features it does not train (see cell_logits)
            self.centre_hidden = keras.layers.Dense(config.units, activation="relu",
                                                    name="centre_hidden")
            self.centre = keras.layers.Dense(1, name="centre")
        else:
            self.centre_hidden = self.centre = None
        table = np.zeros((sum(self.sizes), vocab_size), np.float32)
        for word, column in config.words:
            if word < vocab_size:
                table[column, word] = 1.0
        self.table = table  # (C, V): word v names label c

    def build(self, alphas_shape, features_shape):
        self.hidden.build((None, features_shape[-1]))
        self.classes.build((None, self.grounding_config.units))
        for layer in (self.objectness, self.centre):
            if layer is not None:
                layer.build((None, self.grounding_config.units))
        if self.centre_hidden is not None:
            self.centre_hidden.build((None, features_shape[-1]))

    def read(self, alphas, features):
        """r = alpha-weighted annotation vectors: (batch, [T,] D)."""
        alphas = ops.cast(ops.stop_gradient(alphas), features.dtype)
        if len(alphas.shape) == 2:
            return ops.einsum("bl,bld->bd", alphas, features)
        return ops.einsum("btl,bld->btd", alphas, features)

    def call(self, alphas, features):
        return self.classes(self.hidden(self.read(alphas, features)))

    def cell_logits(self, features):
        """What each cell holds (a head with ``cells``): (batch, L, 1 + C [+ 1]), the
        logit of an object being there, then the labels' logits, read from each
        annotation vector alone (what ``call`` reads for attention on that one cell), and
        with ``centres`` last the logit of an object's box centre being there, read by
        layers of its own from the annotation vectors with their gradient stopped: trained
        into the encoder, the centres cost the captions (plain greedy CIDEr-D 3.12 to 2.80
        on unseen data for the default LSTM); read off it, 3.05, and 3.27 grounded, as
        before the centres."""
        hidden = self.hidden(features)
        parts = [self.objectness(hidden), self.classes(hidden)]
        if self.centre is not None:
            parts.append(self.centre(self.centre_hidden(ops.stop_gradient(features))))
        return ops.concatenate(parts, axis=-1)

    def log_probs(self, logits, relative=False):
        """Each group's log-softmax, side by side (float32); ``relative``: minus the
        group's largest, so that the head's own reading scores 0."""
        logits = ops.cast(logits, "float32")
        parts, start = [], 0
        for size in self.sizes:
            part = ops.log_softmax(logits[..., start:start + size], axis=-1)
            if relative:
                part = part - ops.max(part, axis=-1, keepdims=True)
            parts.append(part)
            start += size
        return ops.concatenate(parts, axis=-1)

    def word_scores(self, alpha, features):
        """(batch, V): for each word that names labels, the sum over them of log p(label)
        - log p(the head's reading), at the place ``alpha`` (batch, L) reads: 0 for a word
        that names what the head reads there (and for the words that name nothing), less
        the surer the head is of something else."""
        return ops.matmul(self.log_probs(self(alpha, features), relative=True),
                          ops.convert_to_tensor(self.table))

    def predictions(self, logits):
        """(..., groups) int: the most likely label of each group."""
        best, start = [], 0
        for size in self.sizes:
            best.append(ops.argmax(logits[..., start:start + size], axis=-1))
            start += size
        return ops.stack(best, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, config=self.grounding_config.to_dict())
        return config


def grounding_loss(logits, labels, mask, sizes, normaliser=None):
    """Mean cross-entropy of the head over the labelled (word, group) pairs.

    logits (batch, T, C); labels int (batch, T, groups), -1 where a group has no label (a
    word that names no object, an attribute the object lacks); mask (batch, T).
    ``normaliser``: divide by this instead of the number of labelled pairs (a replica
    divides by the global batch's).
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    total, count, start = 0.0, 0.0, 0
    for group, size in enumerate(sizes):
        label = labels[..., group]
        valid = ops.cast(label >= 0, "float32") * mask
        losses = ops.sparse_categorical_crossentropy(
            ops.maximum(label, 0), logits[..., start:start + size], from_logits=True)
        total = total + ops.sum(losses * valid)
        count = count + ops.sum(valid)
        start += size
    if normaliser is None:
        normaliser = count
    return total / ops.maximum(normaliser, 1.0)


def cell_loss(logits, labels, rows, sizes, normaliser=None):
    """The per-cell reading's loss: binary cross-entropy of "an object is here" over every
    cell of the real rows, plus each group's cross-entropy over the cells an object holds,
    plus with centres the binary cross-entropy of "an object's box centre is here" over
    every cell.

    logits (batch, L, 1 + C [+ 1]) (``GroundingHead.cell_logits``); labels int (batch, L,
    groups [+ 1]), -1 where no object is, and with centres a last column 1 at the cells
    that hold a box centre, 0 elsewhere (``captioner.data.regions.cell_labels``); rows
    (batch,) 1 for a real caption; ``normaliser``: the global batch's number of cells."""
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    rows = ops.cast(rows, "float32")[:, None]  # (batch, 1)
    present = ops.cast(labels[..., 0] >= 0, "float32")
    total = ops.sum(ops.binary_crossentropy(present, logits[..., 0], from_logits=True) * rows)
    columns = 1 + sum(sizes)
    if logits.shape[-1] > columns:  # the centres
        centre = ops.cast(labels[..., len(sizes)], "float32")
        total = total + ops.sum(ops.binary_crossentropy(
            centre, logits[..., columns], from_logits=True) * rows)
        logits, labels = logits[..., :columns], labels[..., :len(sizes)]
    total = total + grounding_loss(logits[..., 1:], labels, present * rows, sizes,
                                   normaliser=1.0)
    if normaliser is None:
        normaliser = ops.sum(rows) * ops.cast(ops.shape(labels)[1], "float32")
    return total / ops.maximum(normaliser, 1.0)


def labelled_pairs(labels, mask):
    """How many (word, group) pairs of a batch carry a label (``grounding_loss``'s count)."""
    return ops.sum(ops.cast(labels >= 0, "float32") * mask[..., None])
