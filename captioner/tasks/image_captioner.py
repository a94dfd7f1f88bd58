"""``ImageCaptioner``: a captioner with everything it needs to caption, in keras-hub's shape."""

import os

from captioner.config import SearchConfig
from captioner.data.images import Unreadable
from captioner.saving import save_model
from captioner.tasks.results import Caption, ImageCaptions
from captioner.tasks.task import Task


class ImageCaptioner(Task):
    """A trained captioner that owns its Keras model, its vocabulary and its summary of the
    training images (out-of-domain marking), and searches captions with its own compiled
    search: callers never pass a vocabulary beside it.

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

    def __init__(self, model, vocabulary, domain=None, config=None, folder=""):
        self.model, self.vocabulary, self.domain = model, vocabulary, domain
        self.config = config or {"kind": self.kind, "model": model.model_config.to_dict()}
        self.folder = os.fspath(folder)

    @classmethod
    def from_saved(cls, saved):
        return cls(saved.model, saved.vocabulary, saved.domain, saved.config, saved.folder)

    def save(self, folder, card=None):
        """Writes this captioner as a model folder (model, vocabulary, domain summary,
        config and, from the folder it came from or ``card``, its model card)."""
        if card is None and self.folder:
            path = os.path.join(self.folder, "MODEL_CARD.md")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    card = handle.read()
        extra = {key: value for key, value in self.config.items() if key not in ("kind", "model")}
        save_model(folder, self.model, self.vocabulary, card, extra, domain=self.domain)
        return os.fspath(folder)

    @property
    def trained_on(self):
        """What its training images were, in a few words (config.json's "data"), or None."""
        return self.config.get("data")

    @property
    def grid_shape(self):
        """(H, W) of the attention maps."""
        return self.model.grid_shape

    @property
    def labels(self):
        return self.vocabulary

    def answers(self, images, search=None, batch_size=16, unreadable="raise", progress=None,
                heads=False):
        """Yields per image, in order, its :class:`ImageCaptions` (or, with
        ``unreadable="report"``, an ``Unreadable`` where it could not be read): each batch
        is read once, encoded once and decoded in one compiled call, its features feeding
        the search and the domain check alike. ``heads``: with a Transformer decoder each
        caption also gets every layer's and head's maps (``Caption.heads``)."""
        from captioner.inference import caption_files
        search = search or SearchConfig()
        for item in caption_files(self.model, self.vocabulary, list(images), batch_size,
                                  progress=progress, domain=self.domain,
                                  unreadable=unreadable, heads=heads, **search.options()):
            if isinstance(item, Unreadable):
                yield item
                continue
            path, image, hypotheses, place = item
            yield ImageCaptions(
                os.fspath(path) if isinstance(path, (str, os.PathLike)) else None, image,
                [Caption.from_hypothesis(h) for h in hypotheses],
                place["out_of_domain"] if place else None, place["distance"] if place else None)

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

    def evaluate(self, records=None, instances=None, coco=None, split="test", karpathy=None,
                 images=None, search=None, batch_size=32, progress=None, tokenizer="auto",
                 limit=None, metrics=None):
        """Captions an annotated split and scores it (``captioner.evaluation.evaluate``):
        ``records`` (and their ``instances``), or a split of a COCO folder (``coco``) or of
        a Karpathy split file (``karpathy`` with its image folder ``images``); ``metrics``:
        by default all of ``captioner.metrics.captions.METRICS``. Returns an
        ``Evaluation`` (COCO results, scores, notes, every caption with its maps)."""
        from captioner.data.coco import CaptionSource
        from captioner.evaluation import evaluate
        if records is None:
            records, instances = CaptionSource(coco, karpathy, images).split(split)
        records = records[:limit] if limit else records
        search = search or SearchConfig()
        options = {} if metrics is None else {"metrics": metrics}
        return evaluate(self.model, self.vocabulary, records, instances, batch_size,
                        progress=progress, tokenizer=tokenizer, **options, **search.options())

    def export(self, out, format="saved_model", grounded=None):
        """Writes a folder that serves this captioner's greedy search (grounded at weight
        ``grounded``, 0: plain, None: as ``caption`` searches by default) without this code (``captioner.export``: a TensorFlow
        SavedModel or ONNX); returns ``out``."""
        from captioner.export import export
        return export(self, out, format, grounded)
