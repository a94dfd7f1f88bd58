"""Training batches: images with one caption each, no step spent on all-padding columns.

Each epoch visits every training image once, in an order drawn from ``(seed, epoch)``, and
pairs it with one of its captions drawn the same way. The CNN therefore runs once per
image per step, and the batches of any epoch can be reproduced exactly on resume.

Lengths: within pools of ``POOL`` batches of that order, images are sorted by the length
of their caption and cut into batches, and the batches are shuffled; each batch is then
cut to its longest caption, rounded up to a multiple of ``length_bucket`` steps, so a
batch of 9-word captions does not run 41 decoder steps, and the model sees only a few
shapes (XLA compiles once per shape). Every batch has ``batch_size`` rows: the last one is
filled up with copies of its own rows at weight 0, so it needs no compilation of its own.

An :class:`EpochPlan` says all of that as arrays; :class:`CaptionBatches` (a Keras
``PyDataset``, Python threads) and ``captioner.data.tf_pipeline`` (tf.data) both follow it,
so both give the same batches. A batch is ``(x, y, sample_weight)``:

    x: {"images": uint8 (B, S, S, 3), "tokens": int32 (B, T)}, T <= max_length + 1, or
       "features" (B, H*W, D) instead of "images" when a frozen encoder's are cached;
       tokens = <start> w1 ... wn <pad> ...; with attention supervision also "regions"
       float32 (B, T, H*W) (``captioner.data.regions``)
    y: int32 (B, T), the same words shifted left: w1 ... wn <end> <pad> ...
    sample_weight: float32 (B, T), 1 where y is a word or <end>, 0 on padding, on filler
       rows and on images that could not be read (``bad_images="skip"``).
"""

import dataclasses
import os
import sys
import threading

import keras
import numpy as np

from captioner.data.images import load_resized
from captioner.errors import DataError, ImageError
from captioner.text import tokenize

POOL = 64  # batches sorted by caption length together: the wider, the less padding
BAD_IMAGES = ("skip", "error")


class CaptionTable:
    """Every caption of ``records`` as word ids, encoded once, cut at ``max_length``.

    Caption ``c`` is ``ids[offsets[c]:offsets[c + 1]]`` (``lengths[c]`` words); record
    ``r``'s captions are ``first[r]`` .. ``first[r + 1] - 1``. About 4 bytes per word:
    COCO's 590k captions take 30 MB, against about 1 GB as Python lists.
    """

    def __init__(self, records, vocabulary, max_length):
        self.vocabulary, self.max_length = vocabulary, max_length
        counts = np.array([len(record.captions) for record in records], np.int64)
        if counts.size and counts.min() == 0:
            raise DataError("Every training image needs at least one caption.")
        self.first = np.concatenate([[0], np.cumsum(counts)])
        encoded = [vocabulary.encode(caption)[:max_length]
                   for record in records for caption in record.captions]
        self.lengths = np.array([len(ids) for ids in encoded], np.int32)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])
        self.ids = np.fromiter((token for ids in encoded for token in ids), np.int32,
                               count=int(self.offsets[-1]))

    def arrays(self, captions, steps):
        """(tokens, targets, mask), each (len(captions), steps), of captions by index."""
        vocabulary = self.vocabulary
        tokens = np.full((len(captions), steps), vocabulary.pad_id, np.int32)
        targets = np.full((len(captions), steps), vocabulary.pad_id, np.int32)
        for row, caption in enumerate(captions):
            ids = self.ids[self.offsets[caption]:self.offsets[caption + 1]][:steps - 1]
            tokens[row, 0] = vocabulary.start_id
            tokens[row, 1:len(ids) + 1] = ids
            targets[row, :len(ids)] = ids
            targets[row, len(ids)] = vocabulary.end_id
        mask = (targets != vocabulary.pad_id).astype(np.float32)
        return tokens, targets, mask


@dataclasses.dataclass
class EpochPlan:
    """What every batch of an epoch holds, row by row: ``images`` and ``captions`` (indices
    into the records and the CaptionTable), ``weights`` (0 for filler rows) — all
    (batches, batch_size) — and ``steps`` (batches,), each batch's decoder steps."""
    images: np.ndarray
    captions: np.ndarray
    weights: np.ndarray
    steps: np.ndarray

    def padding_share(self, table):
        """The share of the decoder's steps spent on padding or filler rows, and the same
        with every batch padded to ``max_length + 1`` (``table``: the CaptionTable)."""
        words = float((table.lengths[self.captions] + 1)[self.weights > 0].sum())
        run = float(self.steps.sum() * self.images.shape[1])
        return 1.0 - words / run, 1.0 - words / float((table.max_length + 1) * self.images.size)

    def shard(self, index, count):
        """The plan of process ``index`` of ``count``: its consecutive share of the rows of
        every batch (each batch keeps its steps, so every process runs the same shapes)."""
        if count == 1:
            return self
        size = self.images.shape[1] // count
        rows = slice(index * size, (index + 1) * size)
        return EpochPlan(self.images[:, rows], self.captions[:, rows], self.weights[:, rows],
                         self.steps)


def plan_epoch(table, batch_size, seed=0, epoch=0, shuffle=True, length_bucket=4):
    """The :class:`EpochPlan` of ``epoch`` (a pure function of its arguments).

    ``shuffle=False`` keeps the records' order with their first caption (validation).
    ``length_bucket=0`` pads every batch to ``max_length + 1`` steps, in drawn order.
    """
    count = len(table.first) - 1
    if shuffle:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(count)
        per_image = table.first[order + 1] - table.first[order]
        captions = table.first[order] + (rng.random(count) * per_image).astype(np.int64)
    else:
        order, captions = np.arange(count), table.first[:-1].copy()
    batches = -(-count // batch_size)
    if shuffle and length_bucket:
        pool = POOL * batch_size
        for start in range(0, count, pool):  # similar lengths together, within each pool
            span = slice(start, start + pool)
            by_length = np.argsort(table.lengths[captions[span]], kind="stable")
            order[span], captions[span] = order[span][by_length], captions[span][by_length]
    fill = batches * batch_size - count  # the last batch: copies of its own rows, weight 0
    last = np.arange(fill) % (count - (batches - 1) * batch_size) + (batches - 1) * batch_size
    order, captions = (np.concatenate([a, a[last]]) for a in (order, captions))
    weights = np.concatenate([np.ones(count, np.float32), np.zeros(fill, np.float32)])
    images, captions, weights = (a.reshape(batches, batch_size)
                                 for a in (order, captions, weights))
    if shuffle and length_bucket:
        shuffled = rng.permutation(batches)
        images, captions, weights = images[shuffled], captions[shuffled], weights[shuffled]
    most = table.max_length + 1
    if length_bucket:
        longest = table.lengths[captions].max(axis=1) + 1  # + <end>
        steps = np.minimum(-(-longest // length_bucket) * length_bucket, most)
    else:
        steps = np.full(batches, most)
    return EpochPlan(images, captions, weights, steps.astype(np.int64))


class ImageCache:
    """Training images as model input (uint8 (S, S, 3), ``load_resized``), kept in memory
    up to a budget and decoded on demand beyond it; safe to call from several threads.

    ``bad_images="skip"``: an image that cannot be read is reported once on standard
    error, counted in ``bad`` ({index: reason}), and given as zeros with ``ok`` False (its
    rows then weigh nothing); ``"error"`` raises its ImageError.
    """

    input_key = "images"

    def __init__(self, paths, image_size, budget_bytes=2 << 30, bad_images="skip"):
        if bad_images not in BAD_IMAGES:
            raise ValueError(f"bad_images must be one of {BAD_IMAGES}. Received: {bad_images}")
        self.paths, self.image_size, self.bad_images = list(paths), image_size, bad_images
        self.capacity = int(budget_bytes // (image_size * image_size * 3))
        self.cache, self.bad = {}, {}
        self._lock = threading.Lock()

    @property
    def shape(self):
        return (self.image_size, self.image_size, 3)

    def load(self, index):
        """(uint8 (S, S, 3), ok) of image ``index``."""
        array = self.cache.get(index)
        if array is not None:
            return array, True
        if index in self.bad:
            return np.zeros(self.shape, np.uint8), False
        try:
            array = load_resized(self.paths[index], self.image_size)
        except ImageError as error:
            if self.bad_images == "error":
                raise
            with self._lock:
                if index not in self.bad:
                    self.bad[index] = str(error)
                    print(f"warning: skipping an unreadable training image: {error}",
                          file=sys.stderr)
            return np.zeros(self.shape, np.uint8), False
        if len(self.cache) < self.capacity:
            self.cache[index] = array
        return array, True

    def batch(self, indices):
        """(uint8 (B, S, S, 3), ok (B,)) of images ``indices``."""
        loaded = [self.load(int(index)) for index in indices]
        return np.stack([array for array, _ in loaded]), np.array([ok for _, ok in loaded])

    def check(self, progress=True, workers=None):
        """Reads every image once (in threads; filling the cache as far as it goes).

        Raises DataError naming the unreadable ones when ``bad_images="error"``; with
        "skip" they are counted in ``bad``. Returns the number of unreadable images.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm
        failures = {}

        def read(index):
            try:
                self.load(index)
            except ImageError as error:
                failures[index] = str(error)
        with ThreadPoolExecutor(workers or reader_threads()) as pool, \
                tqdm(total=len(self.paths), desc="checking images", unit="image",
                     file=sys.stderr, disable=not progress) as bar:
            for _ in pool.map(read, range(len(self.paths))):
                bar.update(1)
        if failures:
            first = [failures[index] for index in sorted(failures)[:3]]
            more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
            raise DataError(f"{len(failures)} training image(s) cannot be read: "
                            + "; ".join(first) + more)
        return len(self.bad)


def reader_threads():
    """Threads that read images: one per core this process may use, at most 32."""
    return max(1, min(32, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


class CaptionBatches(keras.utils.PyDataset):
    """Training batches over ``records`` (see the module docstring).

    Args:
        records: ImageRecords, each with at least one caption.
        vocabulary: the Vocabulary that encodes the captions.
        image_size: the model's input side.
        batch_size: rows per batch.
        max_length: longest caption in words; longer ones are cut.
        seed: with the epoch, fixes the image order and the caption drawn per image.
        shuffle: False visits the images in order with their first caption (validation).
        images: where a batch's inputs come from: an ``ImageCache`` (the default, giving
            x["images"], every image checked when first read) or a
            ``captioner.data.features.FeatureCache`` (x["features"]).
        length_bucket: batches are cut to their longest caption rounded up to a multiple
            of this; 0 pads all to ``max_length + 1``.
        bad_images: "skip" or "error" (see ``ImageCache``).
        workers: threads that read images ahead of the step (``PyDataset``'s).
        regions: a ``captioner.data.regions.WordRegions`` of ``records``: batches then
            carry x["regions"], the targets of attention supervision.
    """

    def __init__(self, records, vocabulary, image_size, batch_size, max_length, seed=0,
                 shuffle=True, images=None, length_bucket=4, bad_images="skip", workers=None,
                 regions=None, **kwargs):
        super().__init__(workers=workers or reader_threads(), **kwargs)
        self.records, self.vocabulary = records, vocabulary
        self.batch_size, self.max_length = batch_size, max_length
        self.seed, self.shuffle, self.length_bucket = seed, shuffle, length_bucket
        self.table = CaptionTable(records, vocabulary, max_length)
        self.regions = regions
        self.images = images if images is not None else \
            ImageCache([r.path for r in records], image_size, bad_images=bad_images)
        self._shard = (0, 1)
        self.set_epoch(0)

    @property
    def shard(self):
        """(process, processes): this process reads its share of every batch's rows
        (``EpochPlan.shard``); (0, 1), all of them, unless training runs on several hosts."""
        return self._shard

    @shard.setter
    def shard(self, value):
        self._shard = tuple(value)
        self.set_epoch(self.epoch)

    def set_epoch(self, epoch):
        """Fixes the batches of ``epoch`` (a pure function of seed and epoch)."""
        self.epoch = epoch
        self.global_plan = plan_epoch(self.table, self.batch_size, self.seed, epoch,
                                      self.shuffle, self.length_bucket)
        self.plan = self.global_plan.shard(*self._shard)  # what this process reads

    def fit_input(self):
        """What ``fit()`` and ``evaluate()`` take: this PyDataset."""
        return self

    def __len__(self):
        return len(self.plan.steps)

    def words(self, captions, weights, steps):
        """(tokens, targets, mask, *per-word targets) of one batch's rows: ``captions``
        (indices into the CaptionTable) and ``weights`` of its plan, cut to ``steps``; the
        per-word targets (``WordRegions.specs``' order) where the batches carry attention
        supervision's."""
        tokens, targets, mask = self.table.arrays(captions, steps)
        mask *= np.asarray(weights, np.float32)[:, None]
        if self.regions is None:
            return tokens, targets, mask
        arrays = self.regions.arrays(captions, steps)
        return (tokens, targets, mask, *(arrays[key] for key, *_ in self.regions.specs()))

    def word_keys(self):
        """The keys of x that ``words``' per-word targets go to."""
        return [] if self.regions is None else [key for key, *_ in self.regions.specs()]

    def __getitem__(self, index):
        plan = self.plan
        inputs, ok = self.images.batch(plan.images[index])
        tokens, targets, mask, *extra = self.words(plan.captions[index], plan.weights[index],
                                                   int(plan.steps[index]))
        x = {self.images.input_key: inputs, "tokens": tokens, **dict(zip(self.word_keys(), extra))}
        return x, targets, mask * ok[:, None]

    def padding_share(self):
        """(share of decoder steps on padding this epoch, the same at a fixed length)."""
        return self.global_plan.padding_share(self.table)

    @property
    def bad(self):
        """{image index: why it could not be read}, so far."""
        return self.images.bad

    def inputs(self, indices):
        """The model inputs of the images at ``indices`` (for captioning them)."""
        return {self.images.input_key: self.images.batch(np.asarray(indices))[0]}


def max_caption_length(records, limit):
    """The longest caption of ``records`` in words, at most ``limit``."""
    return min(max(len(tokenize(c)) for r in records for c in r.captions), limit)
