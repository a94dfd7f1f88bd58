"""Where the words of the training captions should look: the targets of attention
supervision (Liu et al. 2017, "Attention Correctness in Neural Image Captioning", with
boxes instead of segmentation masks).

For every caption word that names an annotated object (the head noun of a mention, found
by the ``ObjectLexicon`` the grounding metrics use; ``captioner.metrics.attention
.named_objects``), the share of each grid cell that the object's box covers; the words of
a position phrase ("on the left") look at their object too, and those of a relation
phrase ("to the left of", "above") at the object it relates to, which grounded decoding
judges the relation by (``captioner.search.spatial``). A batch of
``CaptionBatches`` then carries x["regions"] (B, T, H*W): that coverage at the word's step
(the step whose attention produces the word), zeros elsewhere. The captioner's loss adds
lambda times the attention mass outside the box on those words
(``captioner.models.losses.outside_attention``).

With a grounding head (``captioner.models.grounding``) the batch also carries x["objects"]
int32 (B, T, groups): at those words the named object's category and attribute values as
label indices (``object_labels``), -1 elsewhere and where the objects a word fits
disagree on an attribute; and for a head that reads cells, x["cells"] int32 (B, H*W,
groups [+ 1]): each cell's labels (``cell_labels``), -1 where no object is (and with
centres whether a box centre is there).
"""

import numpy as np

from captioner.config import GroundingConfig
from captioner.errors import DataError
from captioner.metrics.attention import box_coverage, named_objects
from captioner.metrics.lexicon import ObjectLexicon
from captioner.text import tokenize


def caption_regions(words, objects, image_size, lexicon, grid_shape, steps):
    """float32 (steps, H*W): the box coverage of each word of ``words`` that names one of
    ``objects`` (an image's instances), at the word's step; for any caption, such as a
    sampled one (self-critical training)."""
    regions = np.zeros((steps, grid_shape[0] * grid_shape[1]), np.float32)
    for position, chosen in named_objects(words, objects, lexicon, statement_words=True):
        if position < steps - 1:  # the last step only ends the caption
            regions[position] = box_coverage([o["bbox"] for o in chosen], image_size,
                                             grid_shape).ravel()
    return regions


def grounding_config(instances, vocabulary, lexicon=None, captions=()):
    """The ``GroundingConfig`` of a training split: the categories and attribute values its
    ``instances`` hold, and which words of ``vocabulary`` name them (a category's words
    and plurals, ``ObjectLexicon``'s; a multi-word name such as "stop sign" by its last
    word where no other category claims it), and the position phrases' openers of the
    training ``captions`` (``position_openers``). Empty without objects."""
    lexicon = lexicon or ObjectLexicon.from_instances(instances)
    if not lexicon.categories:
        return GroundingConfig()
    attributes = {}
    for name, value in lexicon.attribute_words.values():
        attributes.setdefault(name, set()).add(value)
    config = GroundingConfig(categories=list(lexicon.categories),
                             attributes={n: sorted(v) for n, v in sorted(attributes.items())},
                             cells=True, centres=True)
    columns, start = {}, 0
    for name, labels in config.groups():
        columns.update({(name, label): start + i for i, label in enumerate(labels)})
        start += len(labels)
    names = {phrase[0]: category for phrase, category in lexicon.phrases.items()
             if len(phrase) == 1}
    last = {}
    for phrase, category in lexicon.phrases.items():
        if len(phrase) > 1 and phrase[-1] not in names:
            last.setdefault(phrase[-1], set()).add(category)
    names.update({word: found.pop() for word, found in last.items() if len(found) == 1})
    words = []
    for word, index in sorted(vocabulary.index.items(), key=lambda item: item[1]):
        if word in names:
            words.append([index, columns[("category", names[word])]])
        if word in lexicon.attribute_words:
            words.append([index, columns[lexicon.attribute_words[word]]])
    config.words = words
    config.openers = position_openers(list(captions), lexicon, vocabulary)
    return config


THIRDS = ("left", "right", "middle"), ("top", "bottom", "middle")


def position_openers(captions, lexicon, vocabulary, limit=20000):
    """[[word id, share, flags]] of the words that open position phrases right after an
    object word in ``captions`` (the first ``limit``): "on", "at", "in" where they do;
    share: how often such a use opens a position phrase ("a cat on a bed" does not);
    flags (9,): which thirds, across x down (``THIRDS``), the phrases it opened claim
    ("at" of "at the top" and "at the bottom left": every third but the middle row)."""
    from captioner.metrics.statements import statements
    uses, positional, claims = {}, {}, {}
    for caption in captions[:limit]:
        words = tokenize(caption)
        found = statements(words, lexicon, sizes=False)
        opened = {s.start: s.claim for s in found if s.kind == "position"}
        for mention in lexicon.mentions(words):
            if mention.end < len(words) and words[mention.end] in ("on", "at", "in"):
                word = words[mention.end]
                uses[word] = uses.get(word, 0) + 1
                if mention.end in opened:
                    positional[word] = positional.get(word, 0) + 1
                    claims.setdefault(word, set()).add(opened[mention.end])
    openers = []
    for word, count in sorted(uses.items()):
        if word not in vocabulary.index or word not in claims:
            continue
        flags = [int(any(h in (None, across) and v in (None, down) for h, v in claims[word]))
                 for across in THIRDS[0] for down in THIRDS[1]]
        openers.append([vocabulary.index[word], round(positional[word] / count, 4), flags])
    return openers


def cell_labels(objects, image_size, grid_shape, grounding, indices=None):
    """int32 (H*W, groups [+ 1]): what each grid cell of an image holds, for a grounding
    head that reads cells (``GroundingConfig.cells``): the labels (``object_labels``) of
    the object whose box covers at least half of the cell or holds its box centre there
    (the smallest such box where several do), -1 in every group where no object does;
    with ``GroundingConfig.centres`` a last column, 1 where some box has its centre."""
    indices = indices or label_indices(grounding)
    rows, columns = grid_shape
    labels = np.full((rows * columns, len(indices) + grounding.centres), -1, np.int32)
    width, height = image_size
    centres = np.zeros((rows, columns), bool)
    for obj in sorted(objects, key=lambda o: -o["bbox"][2] * o["bbox"][3]):  # small last
        x, y, w, h = obj["bbox"]
        covered = box_coverage([obj["bbox"]], image_size, grid_shape) >= 0.5
        row = min(max(int((y + h / 2) / height * rows), 0), rows - 1)
        column = min(max(int((x + w / 2) / width * columns), 0), columns - 1)
        covered[row, column] = centres[row, column] = True
        labels[covered.ravel(), :len(indices)] = object_labels([obj], grounding, indices)
    if grounding.centres:
        labels[:, -1] = centres.ravel()
    return labels


def label_indices(grounding):
    """[(group name, {label: index})] of ``grounding.groups()``: what ``object_labels``
    looks labels up in (made once, not per word)."""
    return [(name, {label: index for index, label in enumerate(labels)})
            for name, labels in grounding.groups()]


def object_labels(chosen, grounding, indices=None):
    """int32 (groups,): the labels (``GroundingConfig.groups``) of the objects ``chosen``
    for one word: each group's index where they all agree on a known label, else -1.
    ``indices``: ``label_indices(grounding)``, where the caller has it."""
    indices = indices or label_indices(grounding)
    labels = np.full(len(indices), -1, np.int32)
    for group, (name, known) in enumerate(indices):
        if name == "category":
            values = {o["category"] for o in chosen}
        else:
            values = {str(o.get("attributes", {}).get(name, "")).lower() for o in chosen}
        if len(values) == 1:
            labels[group] = known.get(values.pop(), -1)
    return labels


class WordRegions:
    """The targets of attention supervision for the captions of ``records``, in
    ``CaptionTable`` order, computed per batch.

    Args:
        records: the ImageRecords of the split, with their image sizes.
        instances: {image_id: [{"bbox", "category", "attributes"}]} of those images
            (``captioner.data.coco.Instances``, flat arrays).
        grid_shape: (H, W) of the model's attention grid.
        max_length: captions are cut at this many words, as the CaptionTable cuts them.
        lexicon: an ObjectLexicon; by default the one of ``instances``.
        grounding: a ``GroundingConfig`` with categories: batches then also carry the
            labels of the grounding head (x["objects"]).
        words: "nouns", the head noun of each mention; "mentions", its attribute words
            too ("white" of "white star" looks at the white star's box, and is labelled
            with it).

    Nothing is computed for the whole split up front (on COCO that would be a pass over
    591k captions before the first step): ``arrays`` finds a batch's named words and their
    boxes' coverage when the batch is made, on the input pipeline's threads (about a
    millisecond per caption that names something), for tf.data and Python threads alike.
    """

    def __init__(self, records, instances, grid_shape, max_length, lexicon=None,
                 grounding=None, words="nouns"):
        self.grid_shape, self.max_length = tuple(grid_shape), max_length
        self.attribute_words = words == "mentions"  # also "white" of "white star"
        self.grounding = grounding if grounding is not None and grounding.enabled else None
        self.indices = label_indices(self.grounding) if self.grounding is not None else None
        self.records, self.instances = records, instances
        self.lexicon = lexicon or ObjectLexicon.from_instances(instances)
        counts = np.array([len(record.captions) for record in records], np.int64)
        self.first = np.concatenate([[0], np.cumsum(counts)])  # record r: its first caption
        for record in (r for r in records if not (r.width and r.height)):
            if record.image_id in instances:
                raise DataError(f"image {record.image_id} ({record.path}) has boxes but no "
                                "width and height in the captions file: its boxes cannot "
                                "be placed on the attention grid")

    def specs(self):
        """[(key, dtype, shape of an entry, per word)] of the arrays ``arrays`` makes: per
        word (batch, steps) + shape, else per caption (batch,) + shape."""
        cells = self.grid_shape[0] * self.grid_shape[1]
        specs = [("regions", np.float32, (cells,), True)]
        if self.grounding is not None:
            specs.append(("objects", np.int32, (len(self.indices),), True))
            if self.grounding.cells:
                specs.append(("cells", np.int32,
                              (cells, len(self.indices) + self.grounding.centres), False))
        return specs

    def _record(self, caption):
        """The index of the record of caption ``caption``."""
        return int(np.searchsorted(self.first, caption, side="right")) - 1

    def named(self, caption):
        """[(position, image size, the objects it fits)] of caption ``caption``'s words
        that name one of its image's objects."""
        index = self._record(caption)
        record = self.records[index]
        objects = self.instances.get(record.image_id)
        if not objects:
            return []
        words = tokenize(record.captions[caption - self.first[index]])[:self.max_length]
        return [(position, (record.width, record.height), chosen)
                for position, chosen in named_objects(words, objects, self.lexicon,
                                                      self.attribute_words,
                                                      statement_words=True)]

    def arrays(self, captions, steps):
        """{key: array (len(captions), steps, ...)} (see ``specs``): "regions", each named
        word's box coverage at its step, and with a grounding head "objects"."""
        arrays = {key: np.zeros((len(captions),) + ((steps,) if timed else ()) + shape, dtype)
                  for key, dtype, shape, timed in self.specs()}
        if "objects" in arrays:
            arrays["objects"] -= 1
        for row, caption in enumerate(captions):
            if "cells" in arrays:
                record = self.records[self._record(int(caption))]
                arrays["cells"][row] = cell_labels(
                    self.instances.get(record.image_id, []), (record.width, record.height),
                    self.grid_shape, self.grounding, self.indices)
            for position, size, chosen in self.named(int(caption)):
                if position < steps - 1:  # the last step only ends the caption
                    arrays["regions"][row, position] = box_coverage(
                        [o["bbox"] for o in chosen], size, self.grid_shape).ravel()
                    if "objects" in arrays:
                        arrays["objects"][row, position] = object_labels(
                            chosen, self.grounding, self.indices)
        return arrays
