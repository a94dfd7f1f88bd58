"""Batches for ``fit()``: images with one caption each, padded to a fixed length.

Each epoch visits every training image once, in an order drawn from ``(seed, epoch)``, and
pairs it with one of its captions drawn the same way. The CNN therefore runs once per
image per step, and the order of any epoch can be reproduced exactly on resume.

A batch is ``(x, y, sample_weight)``:
    x: {"images": float32 (B, S, S, 3), "tokens": int32 (B, T)}   T = max_length + 1,
       or "features" (B, H*W, D) instead of "images" when a frozen encoder's are cached;
       tokens = <start> w1 ... wn <pad> ...
    y: int32 (B, T), the same words shifted left: w1 ... wn <end> <pad> ...
    sample_weight: float32 (B, T), 1 where y is a word or <end>, 0 on padding.
"""

import numpy as np

import keras

from captioner.data.images import load_image, preprocess_image


def encode_captions(vocabulary, captions, max_length):
    """Captions -> (tokens, targets, mask) arrays of shape (N, max_length + 1)."""
    steps = max_length + 1
    tokens = np.full((len(captions), steps), vocabulary.pad_id, np.int32)
    targets = np.full((len(captions), steps), vocabulary.pad_id, np.int32)
    for row, caption in enumerate(captions):
        ids = vocabulary.encode(caption)[:max_length]
        tokens[row, :len(ids) + 1] = [vocabulary.start_id] + ids
        targets[row, :len(ids) + 1] = ids + [vocabulary.end_id]
    mask = (targets != vocabulary.pad_id).astype(np.float32)
    return tokens, targets, mask


class ImageCache:
    """Preprocessed images kept in memory up to a budget, decoded on demand beyond it."""

    input_key = "images"

    def __init__(self, paths, image_size, backbone, budget_bytes=2 << 30):
        self.paths, self.image_size, self.backbone = list(paths), image_size, backbone
        per_image = image_size * image_size * 3 * 4
        self.capacity = int(budget_bytes // per_image)
        self.cache = {}

    def __getitem__(self, index):
        array = self.cache.get(index)
        if array is None:
            array = preprocess_image(load_image(self.paths[index]), self.image_size, self.backbone)
            if len(self.cache) < self.capacity:
                self.cache[index] = array
        return array

    def batch(self, indices):
        return np.stack([self[i] for i in indices])  # (B, S, S, 3)


class CaptionBatches(keras.utils.PyDataset):
    """Training batches over ``records`` (see the module docstring).

    Args:
        records: ImageRecords, each with at least one caption.
        vocabulary: the Vocabulary that encodes the captions.
        image_size, backbone: passed to ``preprocess_image``.
        batch_size: images per batch; the last batch of an epoch may be smaller.
        max_length: longest caption in words; longer ones are cut.
        seed: with the epoch, fixes the image order and the caption drawn per image.
        shuffle: False visits the images in order with their first caption (validation).
        images: where a batch's inputs come from: an ``ImageCache`` (the default, giving
            x["images"]) or a ``captioner.data.features.FeatureCache`` (x["features"]).
    """

    def __init__(self, records, vocabulary, image_size, backbone, batch_size, max_length,
                 seed=0, shuffle=True, images=None, **kwargs):
        super().__init__(**kwargs)
        self.records, self.vocabulary = records, vocabulary
        self.batch_size, self.max_length = batch_size, max_length
        self.seed, self.shuffle = seed, shuffle
        self.images = images if images is not None else \
            ImageCache([r.path for r in records], image_size, backbone)
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Fixes the order and captions of ``epoch`` (a pure function of seed and epoch)."""
        self.epoch = epoch
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            self.order = rng.permutation(len(self.records))
            self.choice = [int(rng.integers(len(self.records[i].captions))) for i in self.order]
        else:
            self.order = np.arange(len(self.records))
            self.choice = [0] * len(self.records)

    def __len__(self):
        return -(-len(self.records) // self.batch_size)

    def __getitem__(self, index):
        span = slice(index * self.batch_size, (index + 1) * self.batch_size)
        indices = self.order[span]
        captions = [self.records[i].captions[c] for i, c in zip(indices, self.choice[span])]
        tokens, targets, mask = encode_captions(self.vocabulary, captions, self.max_length)
        return {self.images.input_key: self.images.batch(indices), "tokens": tokens}, targets, mask

    def inputs(self, indices):
        """The model inputs of the images at ``indices`` (for captioning them)."""
        return {self.images.input_key: self.images.batch(np.asarray(indices))}
