"""``ImageCaptioner``: a captioner with everything it needs to caption, in keras-hub's shape."""

import dataclasses
import os
import time

import numpy as np
from keras import ops

from captioner.config import SearchConfig
from captioner.data.images import load_with_input, resize_image
from captioner.data.vocab import Vocabulary
from captioner.domain import Domain, joined_statistics
from captioner.errors import DataError, ModelError
from captioner.models import replicas
from captioner.models.captioner import Captioner
from captioner.results import Caption, ImageCaptions
from captioner.saving import VOCAB_FILE
from captioner.search import CompiledSearch, sampler_for
from captioner.search.counting import NumberWords
from captioner.search.grounded import can_ground
from captioner.search.spatial import SpatialWords
from captioner.tasks.task import Task, batches, in_order, path_of, read_image

GROUNDED = 1.0  # grounded decoding's weight where a model has a grounding head


def check_vocabulary(model, vocabulary, where="the vocabulary"):
    """Raises ModelError unless ``vocabulary`` is the one ``model`` was trained with."""
    config = model.model_config
    if len(vocabulary) != config.vocab_size:
        raise ModelError(f"Model and vocabulary do not match: the model has {config.vocab_size} "
                         f"words, {where} has {len(vocabulary)}")
    if config.vocab_hash and vocabulary.hash != config.vocab_hash:
        raise ModelError(f"Model and vocabulary do not match: {where} is not the one the model "
                         "was trained with (hash differs)")


class ImageCaptioner(Task):
    """A trained captioner that owns its Keras model, its vocabulary, its summary of the
    training images (out-of-domain marking) and its compiled searches (one per
    ``SearchConfig``, made on first use): callers never pass a vocabulary beside it.

        captioner = ImageCaptioner.from_folder("assets/model")
        results = captioner.caption(["photo.jpg"], search=SearchConfig(beam=3, n_best=2))
        results[0].caption, results[0].best.alphas      # words; (n_words, H, W) maps
        captioner.evaluate(coco="data/synthetic", split="test")
        captioner.save("copy/");  captioner.export("served/", format="saved_model")

    Attributes:
        model: the ``captioner.models.captioner.Captioner`` (a Keras model).
        vocabulary: its ``captioner.data.vocab.Vocabulary``.
        domain: its ``captioner.domain.Domain``, or None.
        config: the model folder's config.json, with the model's complete configuration.
        folder: where it was loaded from ("" for one made in memory).
    """

    kind = "captioner"
    model_class = Captioner
    files = (VOCAB_FILE,)

    def __init__(self, model, vocabulary, domain=None, config=None, folder=""):
        check_vocabulary(model, vocabulary)
        self.model, self.vocabulary, self.domain = model, vocabulary, domain
        self.config = config or {"kind": self.kind, "model": model.model_config.to_dict()}
        self.folder = os.fspath(folder)
        self._searches = {}  # (SearchConfig, statistics) -> CompiledSearch

    @classmethod
    def ensemble(cls, members):
        """One captioner of several (``captioner.models.ensemble``): ``members``
        ImageCaptioners sharing one vocabulary (ModelError naming both folders where two
        differ); the first member's domain check and settings; ``members`` kept."""
        from captioner.models.ensemble import Ensemble
        first = members[0]
        for other in members[1:]:
            if other.kind != cls.kind:
                raise ModelError(f"{other.folder} holds a {other.kind}; an ensemble is of "
                                 "captioners")
            if other.vocabulary.words != first.vocabulary.words:
                raise ModelError(
                    f"an ensemble needs one vocabulary: {first.folder} and {other.folder} have "
                    f"different ones ({len(first.vocabulary):,} and {len(other.vocabulary):,} "
                    "words)")
        task = cls(Ensemble([member.model for member in members]), first.vocabulary,
                   first.domain, first.config, " + ".join(m.folder for m in members))
        task.members = list(members)
        return task

    @property
    def is_ensemble(self):
        return bool(getattr(self, "members", None))

    def member_maps(self, images, captions):
        """An ensemble's members' own maps of given captions: images uint8 (batch, S, S, 3)
        at the first member's size, ``captions`` a list of word ids per image -> per
        caption a list, per member, of (n_words, H_m, W_m): one teacher-forced pass of
        each member over <start> and the words."""
        longest = max([len(words) for words in captions] + [1])
        tokens = np.zeros((len(captions), longest + 1), "int32")
        tokens[:, 0] = self.vocabulary.start_id
        for row, words in enumerate(captions):
            tokens[row, 1:len(words) + 1] = words
        features = self.model.encode(images)
        found = [[] for _ in captions]
        for member, own in zip(self.model.members, features):
            alphas = ops.convert_to_numpy(member({"features": own, "tokens": tokens})["alphas"])
            for row, words in enumerate(captions):
                found[row].append(alphas[row, :len(words)].reshape(
                    (len(words),) + tuple(member.grid_shape)))
        return found

    @classmethod
    def from_files(cls, folder, config, model):
        path = os.path.join(folder, VOCAB_FILE)
        try:
            vocabulary = Vocabulary.load(path)
        except DataError as error:
            raise ModelError(str(error)) from None
        check_vocabulary(model, vocabulary, path)
        domain = Domain.read(folder)
        expected = 2 * model.encoder.feature_dim  # the statistic: mean and spread per channel
        if domain is not None and len(domain.mean) != expected:
            raise ModelError(f"{os.path.join(folder, 'domain.json')} does not match the model: "
                             f"it summarises {len(domain.mean)} values per image, the model "
                             f"gives {expected}")
        return cls(model, vocabulary, domain, config, folder)

    def check_labels(self):
        check_vocabulary(self.model, self.vocabulary)

    def save_labels(self, folder):
        self.vocabulary.save(os.path.join(folder, VOCAB_FILE))
        if self.domain is not None:
            self.domain.save(folder)

    @property
    def trained_on(self):
        """What its training images were, in a few words (config.json's "data"), or None."""
        return self.config.get("data")

    @property
    def grid_shape(self):
        """(H, W) of the attention maps."""
        return self.model.grid_shape

    # --- searching -----------------------------------------------------------------------
    def search_config(self, search=None):
        """``search`` (a ``SearchConfig``, by default greedy) with this model's defaults
        filled in: its longest caption, and grounded decoding where it has a grounding
        head; greedy search keeps none of beam search's settings."""
        search = search or SearchConfig()
        grounded = search.grounded
        if grounded is None:
            grounded = GROUNDED if can_ground(self.model) else 0.0
        settings = {"max_length": search.max_length or self.model.model_config.max_length,
                    "grounded": float(grounded)}
        if search.beam == 1 and search.n_best == 1 and not search.sampling:
            settings.update(length_penalty=0.0)
        if search.beam_groups == 1:
            settings.update(diversity=SearchConfig.diversity)
        return dataclasses.replace(search, **settings)

    def search(self, search=None, statistics=False):
        """The :class:`captioner.search.CompiledSearch` of ``search`` (made once):
        ``statistics`` also returns the annotation vectors' statistics."""
        config = dataclasses.replace(self.search_config(search), seed=0)  # seeds are inputs
        key = (config, bool(statistics))
        if key not in self._searches:
            self._searches[key] = CompiledSearch(
                self.model, sampler_for(config, self.vocabulary), self.vocabulary.start_id,
                self.vocabulary.end_id, config.max_length, statistics, config.grounded,
                self.statement_words() if config.grounded else ())
        return self._searches[key]

    def drop_search(self, search=None):
        """Forgets the compiled searches of ``search`` (a long-running server keeps a
        bounded number)."""
        config = dataclasses.replace(self.search_config(search), seed=0)
        for statistics in (False, True):
            self._searches.pop((config, statistics), None)

    def statement_words(self, model=None):
        """What grounded decoding judges beyond object words: the vocabulary's position
        and relation words (``captioner.search.spatial``), anchored at the words that
        name the grounding head's categories, and with a head that reads cells its
        number words (``captioner.search.counting``); none without a head. Of ``model``
        (by default this task's); an ensemble's: a list per member."""
        if model is None:
            model = self.model
            if self.is_ensemble:
                return [self.statement_words(member) for member in model.members]
        grounding = model.model_config.grounding
        if model.grounding is None or not grounding.enabled:
            return []
        categories = len(grounding.categories)
        words = [SpatialWords(self.vocabulary, [word for word, column in grounding.words
                                                if column < categories], model.grid_shape,
                              grounding.openers)]
        if grounding.cells:
            words.append(NumberWords(self.vocabulary, grounding, model.grid_shape))
        return words

    def decode(self, inputs, search=None, statistics=False):
        """Captions a batch: ``inputs`` {"images": uint8 (batch, S, S, 3)} or {"features":
        (batch, L, D)} (a frozen encoder's cached output) -> per image its captions, best
        first ([[Caption]]); with ``statistics`` also (batch, 2 D), the images' statistic
        for the out-of-domain check (the encoder runs once for both).

        The search runs as one graph: compiled whole, or eagerly where training laid the
        model out across devices (``predict_on_batch`` would split or repeat the batch
        over the replicas)."""
        compiled = self.search(search, statistics)
        if compiled.draws:  # each image's seed
            batch = len(next(iter(inputs.values())))
            inputs = {**inputs, "seed": np.full((batch,), (search or SearchConfig()).seed,
                                                "uint32")}
        outputs = compiled(inputs) if replicas.laid_out() else compiled.predict_on_batch(inputs)
        outputs = {key: ops.convert_to_numpy(value) for key, value in outputs.items()}
        one_cell = self.looks_at_one_cell
        captions = [[Caption.from_hypothesis(found, self.vocabulary.words, self.grid_shape,
                                             one_cell) for found in hypotheses]
                    for hypotheses in compiled.hypotheses(outputs)]
        if not statistics:
            return captions
        return captions, joined_statistics(outputs["feature_mean"], outputs["feature_std"])

    @property
    def looks_at_one_cell(self):
        """Whether decoding reads one grid cell per word (hard attention, argmax inference)."""
        decoder = self.model.model_config.decoder
        return decoder.hard and decoder.hard_inference == "argmax" and not self.is_ensemble

    @property
    def has_heads(self):
        """Whether its maps come from layers and heads (a Transformer decoder)."""
        return hasattr(self.model.decoder, "attention_shape")

    def head_maps(self, images, captions):
        """A Transformer's cross-attention of every layer and head for given captions:
        images uint8 (batch, S, S, 3), ``captions`` one list of word ids per image -> per
        caption (n_words, layers, heads, H, W). One teacher-forced pass of <start> and the
        words: the weights the search computed word by word (its maps are their
        reduction)."""
        longest = max([len(words) for words in captions] + [1])
        tokens = np.zeros((len(captions), longest + 1), "int32")
        tokens[:, 0] = self.vocabulary.start_id
        for row, words in enumerate(captions):
            tokens[row, 1:len(words) + 1] = words
        maps = ops.convert_to_numpy(self.model({"images": images, "tokens": tokens})["attention"])
        layers, heads = self.model.decoder.attention_shape
        return [maps[row, :len(words)].reshape((len(words), layers, heads) + tuple(self.grid_shape))
                for row, words in enumerate(captions)]

    # --- captioning images ---------------------------------------------------------------
    def answers(self, images, search=None, batch_size=16, unreadable="raise", progress=None,
                heads=False):
        """Yields per image, in order, its :class:`ImageCaptions` (or, with
        ``unreadable="report"``, an ``Unreadable`` where it could not be read): each batch
        is read once, encoded once and decoded in one compiled call, its features feeding
        the search and the domain check alike. ``heads``: with a Transformer decoder each
        caption also gets every layer's and head's maps (``Caption.heads``)."""
        size = self.model.model_config.encoder.image_size

        def read(image):  # the RGB array and its model input, exactly as training saw it
            if isinstance(image, (str, os.PathLike)):
                return (image, *load_with_input(image, size))
            array = read_image(image)
            return image, array, resize_image(array, size)

        for good, read_items in batches(images, batch_size, read, unreadable):
            answers = self.answer_batch(good, search, heads=heads) if good else []
            yield from in_order(read_items, answers)
            if progress is not None:
                progress.update(len(read_items))

    def answer_batch(self, items, search=None, heads=False, pad_to=None):
        """One batch of read images, [(path or None, the image as read, its model input
        uint8 (S, S, 3))], encoded once and decoded in one compiled call (its features
        feeding the search and the domain check alike) -> an :class:`ImageCaptions` per
        item. ``pad_to``: decode a batch of this many (the items, then blank images), so
        that batches of any size up to it share one compiled shape (a server's)."""
        inputs = np.stack([model_input for _, _, model_input in items])  # (batch, S, S, 3)
        count = len(items)
        if pad_to and pad_to > count:
            inputs = np.concatenate([inputs, np.zeros((pad_to - count,) + inputs.shape[1:],
                                                      inputs.dtype)])
        found, statistics = self.decode({"images": inputs}, search, statistics=True)
        found, statistics = found[:count], statistics[:count]
        inputs = inputs[:count]
        places = self.domain.flags(statistics) if self.domain is not None else [{}] * count
        if heads and self.has_heads:
            rows = [(row, c) for row, captions in enumerate(found) for c in captions]
            maps = self.head_maps(inputs[[row for row, _ in rows]], [c.tokens for _, c in rows])
            for (_, caption), grids in zip(rows, maps):
                caption.heads = grids
        threshold = self.domain.threshold if self.domain is not None else None
        return [ImageCaptions(path_of(path), image, captions, place.get("out_of_domain"),
                              place.get("distance"), threshold if place else None)
                for (path, image, _), captions, place in zip(items, found, places)]

    def caption(self, images, search=None, batch_size=16, unreadable="raise", heads=False):
        """Captions images (file paths and/or (H, W, 3) uint8 RGB arrays).

        Args:
            search: a ``SearchConfig`` (greedy by default).
            unreadable: "raise" (the first unreadable file raises ImageError) or "report"
                (an ``Unreadable`` in its place; every other image is answered).
            heads: a Transformer's captions also get every layer's and head's maps
                (``Caption.heads``, (n_words, layers, heads, H, W)).

        Returns:
            A list of :class:`ImageCaptions` (and ``Unreadable``), one per image, in order.
        """
        return list(self.answers(images, search, batch_size, unreadable, heads=heads))

    # --- scoring a split -----------------------------------------------------------------
    def caption_records(self, records, search=None, batch_size=32, batches=None,
                        progress=None):
        """Captions annotated ``records``; returns ({image_id: [Caption]}, decoding
        seconds). ``batches(indices)`` gives {"images": ...} or {"features": ...} for those
        records (by default the images are read: ``captioner.evaluation.ImageLoader``);
        records whose image it lists in its ``unreadable`` ({index: why}) get none.
        Decoding time counts the encoder and the search, not reading the files."""
        from captioner.evaluation import ImageLoader
        batches = batches or ImageLoader(records, self.model.model_config.encoder.image_size)
        unreadable = getattr(batches, "unreadable", {})
        captions, seconds = {}, 0.0
        for start in range(0, len(records), batch_size):
            indices = np.arange(start, min(start + batch_size, len(records)))
            inputs = batches(indices)
            started = time.perf_counter()
            found = self.decode(inputs, search)
            seconds += time.perf_counter() - started
            for index, image_captions in zip(indices, found):
                if int(index) not in unreadable:
                    captions[records[index].image_id] = image_captions
            if progress is not None:
                progress.update(len(indices))
        return captions, seconds

    def evaluate(self, records=None, instances=None, coco=None, split="test", karpathy=None,
                 images=None, search=None, batch_size=32, progress=None, tokenizer="auto",
                 limit=None, metrics=None, batches=None, training=None):
        """Captions an annotated split and scores it: ``records`` (and their
        ``instances``), or a split of a COCO folder (``coco``) or of a Karpathy split file
        (``karpathy`` with its image folder ``images``); ``metrics``: by default all of
        ``captioner.metrics.captions.METRICS``; ``batches``: as ``caption_records``';
        ``training``: the training captions (lists of words), for the share of novel
        captions (``captioner.metrics.diversity``; the other diversity scores need none).
        Returns a ``captioner.evaluation.Evaluation`` (COCO results, scores, notes, every
        image's captions). Images that cannot be read are left out of the scores and listed
        in notes["unreadable"] ({path: why}); DataError if none can be read."""
        from captioner.data.coco import CaptionSource
        from captioner.evaluation import ImageLoader, scored
        if records is None:
            records, instances = CaptionSource(coco, karpathy, images).split(split)
        records = records[:limit] if limit else records
        batches = batches or ImageLoader(records, self.model.model_config.encoder.image_size)
        captions, seconds = self.caption_records(records, search, batch_size, batches, progress)
        head = self.model.grounding
        return scored(records, captions, seconds, instances, self.grid_shape,
                      getattr(batches, "unreadable", {}), metrics, tokenizer,
                      head and self.model.model_config.grounding.categories, training)

    def export(self, out, format="saved_model", grounded=None, overwrite=False, search=None):
        """Writes a folder that serves this captioner's ``search`` (a ``SearchConfig``, by
        default greedy; ``grounded`` if given sets its weight of grounded decoding) without
        this code (``captioner.export``: a TensorFlow SavedModel or ONNX); returns ``out``.
        ``out`` is new, empty or an earlier export (``captioner.folders.claim``; with
        ``overwrite`` it may hold other files, which are kept)."""
        from captioner.export import export
        return export(self, out, format, grounded, overwrite, search)
