"""Where the words of the training captions should look: the targets of attention
supervision (Liu et al. 2017, "Attention Correctness in Neural Image Captioning", with
boxes instead of segmentation masks).

For every caption word that names an annotated object (the head noun of a mention, found
by the ``ObjectLexicon`` the grounding metrics use; ``captioner.metrics.attention
.named_objects``), the share of each grid cell that the object's box covers. A batch of
``CaptionBatches`` then carries x["regions"] (B, T, H*W): that coverage at the word's step
(the step whose attention produces the word), zeros elsewhere. The captioner's loss adds
lambda times the attention mass outside the box on those words
(``captioner.models.losses.outside_attention``).
"""

import numpy as np

from captioner.text import tokenize
from captioner.errors import DataError
from captioner.metrics.attention import box_coverage, named_objects
from captioner.metrics.lexicon import ObjectLexicon


def caption_regions(words, objects, image_size, lexicon, grid_shape, steps):
    """float32 (steps, H*W): the box coverage of each word of ``words`` that names one of
    ``objects`` (an image's instances), at the word's step; for any caption, such as a
    sampled one (self-critical training)."""
    regions = np.zeros((steps, grid_shape[0] * grid_shape[1]), np.float32)
    for position, chosen in named_objects(words, objects, lexicon):
        if position < steps - 1:  # the last step only ends the caption
            regions[position] = box_coverage([o["bbox"] for o in chosen], image_size,
                                             grid_shape).ravel()
    return regions


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

    Nothing is computed for the whole split up front (on COCO that would be a pass over
    591k captions before the first step): ``arrays`` finds a batch's named words and their
    boxes' coverage when the batch is made, on the input pipeline's threads (about a
    millisecond per caption that names something), for tf.data and Python threads alike.
    """

    def __init__(self, records, instances, grid_shape, max_length, lexicon=None):
        self.grid_shape, self.max_length = tuple(grid_shape), max_length
        self.records, self.instances = records, instances
        self.lexicon = lexicon or ObjectLexicon.from_instances(instances)
        counts = np.array([len(record.captions) for record in records], np.int64)
        self.first = np.concatenate([[0], np.cumsum(counts)])  # record r: its first caption
        for record in (r for r in records if not (r.width and r.height)):
            if record.image_id in instances:
                raise DataError(f"image {record.image_id} ({record.path}) has boxes but no "
                                "width and height in the captions file: its boxes cannot "
                                "be placed on the attention grid")

    def named(self, caption):
        """[(position, image size, boxes)] of caption ``caption``'s words that name one of
        its image's objects."""
        index = int(np.searchsorted(self.first, caption, side="right")) - 1
        record = self.records[index]
        objects = self.instances.get(record.image_id)
        if not objects:
            return []
        words = tokenize(record.captions[caption - self.first[index]])[:self.max_length]
        return [(position, (record.width, record.height), [o["bbox"] for o in chosen])
                for position, chosen in named_objects(words, objects, self.lexicon)]

    def arrays(self, captions, steps):
        """float32 (len(captions), steps, H*W): each named word's box coverage at its step."""
        cells = self.grid_shape[0] * self.grid_shape[1]
        regions = np.zeros((len(captions), steps, cells), np.float32)
        for row, caption in enumerate(captions):
            for position, size, boxes in self.named(int(caption)):
                if position < steps - 1:  # the last step only ends the caption
                    regions[row, position] = box_coverage(boxes, size, self.grid_shape).ravel()
        return regions
