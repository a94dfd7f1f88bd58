"""Training a captioner: the epoch loop's hooks for Show, Attend and Tell
(``captioner.training.run.train`` runs it).

Validation after each epoch: the teacher-forced loss, and BLEU, ROUGE-L, CIDEr-D (and
grounding, with instances) of free-running greedy captions; CIDEr-D picks the best epoch.
At the end, the best model gets a summary of its training images (``captioner.domain``:
domain.json, what tells the images unlike them) and its scores on the test split.
"""

import dataclasses
import os
import re
import sys

from captioner.config import LOSS_FIELDS
from captioner.data.dataset import CaptionBatches, ImageCache, max_caption_length
from captioner.data.features import FeatureCache
from captioner.data.vocab import Vocabulary
from captioner.domain import summarise
from captioner.errors import ConfigError, DataError
from captioner.evaluation import format_scores
from captioner.models.captioner import create_captioner
from captioner.saving import VOCAB_FILE
from captioner.tasks import ImageCaptioner, check_vocabulary
from captioner.training.card import CardFacts
from captioner.training.loop import EpochLoop

VALIDATION_METRICS = ("BLEU", "ROUGE-L", "CIDEr")
SKIPPED_FILE = "skipped_images.json"  # the unreadable images met so far, per split
DOMAIN_IMAGES = 2000  # training images summarised for out-of-domain marking (captioner.domain)


@dataclasses.dataclass
class TrainingData:
    train: list                 # ImageRecords
    val: list                   # ImageRecords (may be empty: then no validation scores)
    source: str                 # a description for the model card
    val_instances: dict = None  # instances of the validation images, for grounding scores
    train_instances: dict = None  # instances of the training images, for attention supervision
    test: list = ()             # ImageRecords scored with the best model at the end
    test_instances: dict = None


def _metric_key(name):
    """"BLEU-4" -> "val_bleu4", "BLEU-4 (nltk)" -> "val_bleu4_nltk"."""
    return "val_" + re.sub(r"[^a-z0-9]+", "_", name.lower().replace("-", "")).strip("_")


def validation_scores(captioner, batches, limit, instances=None, placement=None):
    """Validation loss (teacher-forced), and the scores of free-running greedy captions of
    the first ``limit`` images by ``captioner`` (an ``ImageCaptioner``): BLEU, ROUGE-L,
    CIDEr-D, and grounding with instances. ``placement``: where training runs (the loss
    is computed once, across its devices)."""
    data = batches.fit_input()
    results = captioner.model.evaluate(placement.input(data) if placement else data,
                                       verbose=0, return_dict=True)
    records = batches.records[:limit] if limit else batches.records
    evaluation = captioner.evaluate(records, instances, batch_size=batches.batch_size,
                                    batches=batches.inputs, metrics=VALIDATION_METRICS)
    keep = [key for key in evaluation.scores if key not in ("images", "mentions", "objects",
                                                            "captions", "words", "ratio",
                                                            "statement_captions")
            and not key.startswith("statements_")]
    return {"val_loss": float(results["loss"]), "val_nll": float(results["nll"]),
            **{_metric_key(key): float(evaluation.scores[key]) for key in keep}}


class CaptionTrainer(EpochLoop):
    """Trains a Captioner on ``data`` (a :class:`TrainingData`) into ``out``.

    ``weights``: the backbone's initial weights (None, "none", "imagenet" or a file);
    ``init``: a model folder to start from instead of a new model (its weights,
    vocabulary and configuration), with ``overrides`` ({name: value} of ``LossConfig``
    fields: the loss section may be set anew); ``feature_cache``: whether a frozen
    encoder's feature grids are computed once and read back (``feature_dir``: where;
    ``feature_dtype``: "float16", the default, half the disk
    of "float32"), instead of running the encoder every step.
    """

    curves = (
        ("loss", (("loss", "train loss"), ("val_loss", "validation loss"))),
        ("validation score (greedy)", (("val_cider", "CIDEr-D"), ("val_bleu4", "BLEU-4"))),
        ("validation grounding", (("val_object_precision", "object precision"),
                                  ("val_object_recall", "object recall"),
                                  ("val_attention_correctness", "attention correctness"),
                                  ("val_uniform_baseline", "uniform attention"))),
        ("validation statements true", (("val_true_position", "positions"),
                                        ("val_true_relation", "relations"),
                                        ("val_true_count", "counts"),
                                        ("val_all_true", "captions all true"))),
    )

    reads_batches = False  # True: the epoch indexes the batches itself (Python pipeline)

    def __init__(self, data, out, model_config, train_config, weights=None, command="",
                 feature_cache=True, feature_dir=None, feature_dtype="float16", init=None,
                 overrides=None):
        if not data.train:
            raise DataError("No training images with captions.")
        super().__init__(out, train_config, command, data.source)
        self.data, self.model_config, self.weights = data, model_config, weights
        self.init, self.overrides = init, dict(overrides or {})
        unknown = sorted(set(self.overrides) - set(LOSS_FIELDS))
        if unknown:
            raise ConfigError(f"the model of --init fixes {', '.join(unknown)}")
        self.feature_cache, self.feature_dir = feature_cache, feature_dir
        self.feature_dtype = feature_dtype
        self.vocabulary, self.train_batches, self._fingerprint = None, None, None
        self._task = None

    def create_model(self):
        if self.init:
            return self._initial_model()
        captions = [c for r in self.data.train for c in r.captions]
        self.vocabulary = Vocabulary.build(captions, self.train_config.data.min_count)
        self.model_config.vocab_size = len(self.vocabulary)
        self.model_config.vocab_hash = self.vocabulary.hash
        self.model_config.max_length = max_caption_length(self.data.train,
                                                          self.train_config.data.max_words)
        if self.model_config.loss.grounding and self.data.train_instances is not None:
            from captioner.data.regions import grounding_config
            self.model_config.grounding = grounding_config(self.data.train_instances,
                                                           self.vocabulary, captions=captions)
        return create_captioner(self.model_config, self.weights, seed=self.train_config.seed)

    def _initial_model(self):
        """The model of the folder ``init``, with the loss weights of ``overrides``."""
        from captioner.tasks import load
        initial = load(self.init)
        if initial.kind != "captioner":
            raise ConfigError(f"--init {self.init} holds a {initial.kind} model, not a captioner")
        model, self.vocabulary = initial.model, initial.vocabulary
        for name, value in self.overrides.items():
            setattr(model.model_config.loss, name, value)
        model.model_config.loss.check()
        if self.overrides.get("grounding") and model.grounding is None:
            raise ConfigError(f"the model of --init {self.init} has no grounding head (it was "
                              "trained without boxes or with --grounding 0); drop --grounding")
        self.model_config = model.model_config
        return model

    def restore(self, model, folder):
        path = os.path.join(folder, VOCAB_FILE)
        if not os.path.isfile(path):  # checkpoints from before they held the vocabulary
            path = os.path.join(self.out, VOCAB_FILE)
        self.vocabulary = Vocabulary.load(path)
        check_vocabulary(model, self.vocabulary, path)
        self.model_config = model.model_config

    def data_fingerprint(self):
        """A hash of the training images' file names and their captions, in order (computed
        once: every checkpoint records it)."""
        if self._fingerprint is None:
            import hashlib
            digest = hashlib.sha256()
            for record in self.data.train:
                digest.update(os.path.basename(record.path).encode() + b"\0")
                digest.update("\n".join(record.captions).encode() + b"\1")
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _features(self, model, records):
        """A FeatureCache for ``records`` when the encoder is frozen (None otherwise: the
        batches then carry images and the encoder runs every step). Several hosts run the
        frozen encoder every step: one process writes files, and the store would be one."""
        if not self.feature_cache or model.encoder.fine_tune or self.placement.processes > 1:
            return None
        return FeatureCache(model.encoder, [r.path for r in records], self.feature_dir,
                            batch_size=self.train_config.batch_size, dtype=self.feature_dtype,
                            progress=self.progress, bad_images=self.train_config.input.bad_images)

    def datasets(self, model):
        config, encoder = self.train_config, self.model_config.encoder
        regions = self._regions(model)
        kind = CaptionBatches if self.reads_batches else batches_class(config.input.pipeline)

        def batches(records, shuffle, regions=None):
            features = self._features(model, records)
            made = kind(records, self.vocabulary, encoder.image_size, config.batch_size,
                        self.model_config.max_length, seed=config.seed, shuffle=shuffle,
                        images=features if features is not None else ImageCache(
                            [r.path for r in records], encoder.image_size,
                            budget_bytes=config.input.image_cache_mb << 20,
                            bad_images=config.input.bad_images),
                        length_bucket=config.data.length_bucket, regions=regions)
            if made.images.input_key == "images" and config.input.bad_images == "error":
                made.images.check(progress=self.progress)  # refuses before the first step
            return made
        self.train_batches = batches(self.data.train, True, regions)
        self.validation = batches(self.data.val, False) if self.data.val else None
        self._known_unreadable()
        return self.train_batches, self.validation

    def _splits(self):
        return (("training", self.train_batches), ("validation", self.validation))

    def _known_unreadable(self):
        """Images OUT/skipped_images.json lists as unreadable (a run resumed, or another
        into the same folder), unchanged since: named before the first step and not read
        again. Every other image is checked when first read (``ImageCache``)."""
        path = os.path.join(self.out, SKIPPED_FILE)
        if not os.path.isfile(path):
            return
        from captioner import io
        listed = io.read_json(path, "list of unreadable images")
        for name, data in self._splits():
            known = listed.get(name, {}) if isinstance(listed, dict) else {}
            if data is None or not known or not isinstance(data.images, ImageCache):
                continue
            for index, image in enumerate(data.images.paths):
                entry = known.get(image)
                if isinstance(entry, dict) and entry.get("file") == _file_state(image):
                    data.images.bad[index] = entry.get("reason", "unreadable")
            if data.bad:
                print(f"skipping {len(data.bad)} of {len(data.records)} {name} images that "
                      f"could not be read before ({path}; --bad-images error refuses them "
                      "instead): " + "; ".join(list(data.bad.values())[:3])
                      + (" ..." if len(data.bad) > 3 else ""), file=sys.stderr)

    def run_files(self):
        """OUT/skipped_images.json: the images found unreadable so far, per split, with the
        size and modification time they had (a resumed run trusts an entry only while the
        file is unchanged)."""
        skipped = {name: {data.records[index].path: {
                       "reason": why, "file": _file_state(data.records[index].path)}
                       for index, why in sorted(data.bad.items())}
                   for name, data in self._splits() if data is not None and data.bad}
        return {SKIPPED_FILE: skipped} if skipped else {}

    def _regions(self, model):
        """The per-word targets of attention supervision and of the grounding head
        (``WordRegions``), where either is on."""
        loss = self.model_config.loss
        grounded = bool(loss.grounding) and model.grounding is not None
        if not (loss.attention_supervision or grounded):
            return None
        if self.data.train_instances is None:
            raise DataError("--attention-supervision and --grounding need boxes: the "
                            "training split's instances file "
                            "(annotations/instances_<split>.json)")
        from captioner.data.regions import WordRegions
        regions = WordRegions(self.data.train, self.data.train_instances, model.grid_shape,
                              self.model_config.max_length,
                              grounding=model.model_config.grounding if grounded else None,
                              words=loss.supervised_words)
        if self.progress:
            on = [f"{what} (lambda {weight})" for what, weight in
                  (("attention supervision", loss.attention_supervision),
                   ("the grounding head", loss.grounding if grounded else 0)) if weight]
            print(f"{' and '.join(on)} on the caption words that name a boxed object "
                  "(--attention-supervision 0, --grounding 0 turn them off)", file=sys.stderr)
        return regions

    def start_epoch(self, model, epoch):
        """Hard attention: the share of expected contexts falls linearly from 1 at epoch 0
        to ``expected_context_rate`` at ``hard_warmup_epochs`` (no warm-up: constant)."""
        decoder = self.model_config.decoder
        if not decoder.hard:
            return
        warmup = self.train_config.hard_warmup_epochs
        progress = min(epoch / warmup, 1.0) if warmup else 1.0
        model.decoder.context_rate.assign(1.0 + (decoder.expected_context_rate - 1.0) * progress)

    def scores(self, model, logs, validation):
        row = {"nll": logs["nll"], "grid": "x".join(map(str, model.grid_shape)),
               "padding": self.train_batches.padding_share()[0]}
        if validation is not None:
            row.update(validation_scores(self.task(model), validation,
                                         self.train_config.run.validation_images,
                                         self.data.val_instances, self.placement))
        row["skipped_images"] = len(self.train_batches.bad)
        return row

    def objective(self, row):
        return -row["val_cider"] if "val_cider" in row else row["loss"]

    def task(self, model):
        """The ``ImageCaptioner`` of the model being trained (made once: its compiled
        searches are kept from epoch to epoch)."""
        if self._task is None or self._task.model is not model:
            self._task = ImageCaptioner(model, self.vocabulary)
        return self._task

    def card(self, state):
        model, training = self.model_config, self.train_config
        grounding = model.grounding
        best = next(row for row in state["history"] if row["epoch"] == state["best_epoch"])
        return CardFacts(
            "captioner model card",
            f"Attention captioner (CNN encoder, {model.decoder.summary()}).", self.command,
            [f"data: {self.source} ({len(self.data.train)} training images, "
             f"{len(self.data.val)} validation)",
             f"backbone: {model.encoder.backbone} at {model.encoder.image_size} px, feature "
             f"grid {best.get('grid', '')}",
             f"training: {training.run.epochs} epochs, batch {training.batch_size}, seed "
             f"{training.seed}"]
            + ([f"grounding head: {len(grounding.categories)} categories, "
                f"{', '.join(grounding.attributes) or 'no attributes'}; captioner caption "
                "--grounded W re-scores object words by it"] if grounding.enabled else [])
            + ([f"started from the model in {self.init}"] if self.init else [])
            + ([f"self-critical sequence training: "
                f"{training.self_critical.scst_samples} samples per "
                f"image, reward CIDEr-D - {training.self_critical.hallucination_penalty} x absent "
                f"objects named, learning rate {training.self_critical.scst_learning_rate}"]
               if training.self_critical.scst else []),
            "validation CIDEr-D" if "val_cider" in best else "training loss",
            usage_sections(self.source, len(self.data.train), len(self.vocabulary),
                           grounding.categories if grounding.enabled else ()))

    def complete(self, task):
        """The domain summary of the best model's encoder (where there are images enough
        to say what is unusual)."""
        task.domain = summarise(task.model, [r.path for r in self.data.train],
                                [r.path for r in self.data.val], limit=DOMAIN_IMAGES,
                                seed=self.train_config.seed, progress=self.progress)

    def test_scores(self, task):
        if not self.data.test:
            return None
        description = f"{len(self.data.test)} images, greedy"
        scores = task.evaluate(self.data.test, self.data.test_instances,
                               batch_size=self.train_config.batch_size).scores
        print(f"test split ({description}):\n{format_scores(scores)}", file=sys.stderr)
        return scores, description


def usage_sections(source, images, words, categories=()):
    """The model card's "Intended use" and "Limitations": what a model trained on
    ``source`` (``images`` training images, a vocabulary of ``words`` words, naming the
    object ``categories``) is for, and what it cannot do."""
    named = f"; the objects it names: {', '.join(categories)}" if categories else ""
    return [
        ("Intended use", [
            f"Captioning images like its training images ({source}, {images} images), and "
            "showing where it looked for every word: a model to study and demonstrate "
            f"visual attention. It writes captions from a vocabulary of {words} words"
            f"{named}."]),
        ("Limitations", [
            "- It knows only what its training images show. An image unlike them still gets "
            "a caption in that vocabulary, which is then a guess: `captioner caption` says "
            "so on standard error before such a caption (its domain summary, domain.json, "
            "decides which images are unlike them), and `--json` marks it `out_of_domain`.",
            "- Its scores below are on validation images of the same data, not on other "
            "data.",
            "- To caption photographs, train on COCO or Flickr images with a pretrained "
            "backbone (the documentation's \"Train on COCO\" recipe).",
            "- Captions can name objects that are not in the image (CHAIR in the scores); "
            "do not use them where a wrong caption causes harm."]),
    ]


def _file_state(path):
    """[size, modification time in ns] of a file, or None where it cannot be reached."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def batches_class(pipeline):
    """The CaptionBatches class of a ``TrainConfig.input.pipeline``: tf.data where TensorFlow is
    installed ("auto"), else Python threads."""
    if pipeline != "python":
        try:
            from captioner.data.tf_pipeline import TFCaptionBatches
            return TFCaptionBatches
        except ImportError:
            if pipeline == "tf.data":
                raise ConfigError("--pipeline tf.data needs TensorFlow (pip install "
                                  "tensorflow); --pipeline python reads the same batches "
                                  "without it") from None
    return CaptionBatches
