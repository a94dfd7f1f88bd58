"""Self-critical sequence training (Rennie et al. 2017, "Self-critical Sequence Training
for Image Captioning"): fine-tune a cross-entropy model on the score its captions get.

Each step, for a batch of training images, one compiled call
(``captioner.search.SelfCriticalSearch``) decodes every image's greedy caption
and draws ``scst_samples`` captions from the model (Gumbel-max, the noise drawn from
(seed, epoch, step), so a resumed run draws the same). Each caption's reward is its
CIDEr-D against the image's references (``captioner.metrics.cider.CiderD``, document
frequencies of the training references), minus ``hallucination_penalty`` for each object
it names that the image's instances do not hold (the grounding metric's lexicon). The
greedy caption's reward is the baseline: a sample better than what the model would say
now is made more likely, a worse one less, through the REINFORCE surrogate of
``captioner.models.losses`` (``Captioner.compute_loss`` with x["advantage"]). The
samples are read back as they were drawn: without dropout, attention as in decoding.
With ``--attention-supervision`` the sampled words that name an object present keep
their box as attention target.

    train.py --coco DIR --init CE_MODEL --out DIR --scst [--scst-samples 5]
             [--hallucination-penalty 0.5] [--epochs 5]

Validation, checkpoints, exact resume and the test split are the loop's, as for
cross-entropy training; each epoch's row adds the mean reward of the samples and of the
greedy captions, and the objects named that are absent, per sampled caption.
"""

import collections
import dataclasses

import keras
import numpy as np

from captioner.data.regions import caption_regions
from captioner.errors import ConfigError, DataError
from captioner.metrics.cider import CiderD
from captioner.metrics.grounding import absent_kinds
from captioner.metrics.lexicon import ObjectLexicon
from captioner.search import SelfCriticalSearch
from captioner.text import tokenize
from captioner.training.captioning import CaptionTrainer
from captioner.training.loop import compile_for_training


@dataclasses.dataclass
class Scored:
    reward: np.ndarray  # CIDEr-D - penalty * absent - mispairing * mis-paired
    cider: np.ndarray
    absent: np.ndarray  # objects named that the image does not hold


class Rewards:
    """The reward of captions of the training ``records`` (see the module docstring).

    ``instances`` ({image_id: objects}) is needed for ``penalty`` > 0."""

    def __init__(self, records, instances=None, penalty=0.0, mispairing=0.0):
        self.cider = CiderD([[tokenize(c) for c in r.captions] for r in records])
        self.penalty, self.mispairing = penalty, mispairing
        self.objects = self.lexicon = None
        if instances is not None:
            self.objects = [instances.get(r.image_id, []) for r in records]
            self.lexicon = ObjectLexicon.from_instances(instances)
        elif penalty or mispairing:
            raise DataError("--hallucination-penalty and --mispairing-penalty need the "
                            "training split's instances file "
                            "(annotations/instances_<split>.json)")

    def __call__(self, images, captions):
        """``Scored`` of ``captions`` (lists of words) of the records at ``images``."""
        cider = np.array(self.cider.scores(images, captions))
        absent, mispaired = np.zeros(len(captions)), np.zeros(len(captions))
        if self.objects is not None:
            kinds = [absent_kinds(words, self.objects[int(image)], self.lexicon)
                     for image, words in zip(images, captions)]
            absent = np.array([sum(k.values()) for k in kinds], float)
            mispaired = np.array([k["mispaired"] for k in kinds], float)
        return Scored(cider - self.penalty * absent - self.mispairing * mispaired, cider,
                      absent)


def decoded_words(outputs, prefix, vocabulary):
    """The captions of ``greedy_graph``'s arrays (under ``prefix``) as lists of words."""
    words, lengths = outputs[prefix + "words"], outputs[prefix + "lengths"]
    return [[vocabulary.words[t] for t in words[row, :n]] for row, n in enumerate(lengths)]


def teacher_forcing(outputs, prefix, vocabulary):
    """(tokens, targets, mask), each (N, max_length + 1), of the decoded captions: the
    batch that reads them back word by word; <end> is a target where the caption ended."""
    words, lengths = outputs[prefix + "words"], outputs[prefix + "lengths"]
    finished = outputs[prefix + "finished"]
    rows, most = words.shape
    steps = np.arange(most + 1)[None]
    inside = steps < lengths[:, None]  # (N, most + 1): the caption's words
    padded = np.concatenate([words, np.full((rows, 1), vocabulary.pad_id, words.dtype)], 1)
    targets = np.where(inside, padded, vocabulary.pad_id)
    targets[np.arange(rows)[finished], lengths[finished]] = vocabulary.end_id
    tokens = np.full_like(targets, vocabulary.pad_id)
    tokens[:, 0] = vocabulary.start_id
    tokens[:, 1:] = np.where(inside[:, :-1], words, vocabulary.pad_id)
    mask = (inside | (finished[:, None] & (steps == lengths[:, None]))).astype(np.float32)
    return tokens.astype(np.int32), targets.astype(np.int32), mask


class SelfCriticalTrainer(CaptionTrainer):
    """A ``CaptionTrainer`` whose epochs are self-critical steps
    (``train_config.self_critical.scst``);
    it starts from the model folder ``init``."""

    reads_batches = True
    curves = CaptionTrainer.curves + (
        ("self-critical reward (train)", (("reward", "sampled captions"),
                                          ("greedy_reward", "greedy captions"))),)

    def __init__(self, data, out, model_config, train_config, init=None, **kwargs):
        if not init:
            raise ConfigError("--scst fine-tunes a trained model: give its folder with "
                              "--init DIR (train it first with cross-entropy)")
        if train_config.distribution.distribute:
            raise ConfigError("--scst runs on one device (drop --distribute)")
        super().__init__(data, out, model_config, train_config, init=init, **kwargs)
        self.rewards = self.search = None

    def _regions(self, model):
        """Supervision's targets come with the sampled captions (``train_epoch``)."""
        if self.model_config.loss.attention_supervision and self.data.train_instances is None:
            raise DataError("--attention-supervision needs boxes: the training split's "
                            "instances file (annotations/instances_<split>.json)")
        return None

    def compile(self, model, steps_per_epoch):
        config, rate = self.train_config, self.train_config.self_critical.scst_learning_rate
        compile_for_training(model, dataclasses.replace(
            config, learning_rate=rate, min_learning_rate=min(config.min_learning_rate, rate)),
            steps_per_epoch)

    def train_epoch(self, model, train, epoch, callbacks):
        config, vocabulary = self.train_config.self_critical, self.vocabulary
        if self.rewards is None:
            self.rewards = Rewards(self.data.train, self.data.train_instances,
                                   config.hallucination_penalty, config.mispairing_penalty)
            self.search = SelfCriticalSearch(model, vocabulary.start_id, vocabulary.end_id,
                                             self.model_config.max_length, config.scst_samples)
        samples, key = config.scst_samples, train.images.input_key
        callbacks = keras.callbacks.CallbackList(callbacks, model=model)
        callbacks.on_train_begin()
        callbacks.on_epoch_begin(epoch)
        sums, rows, logs = collections.defaultdict(float), 0.0, {}
        for step in range(len(train)):
            images = train.plan.images[step]
            inputs, ok = train.images.batch(images)
            weights = np.repeat(train.plan.weights[step] * ok, samples)
            rng = np.random.default_rng([self.train_config.seed, epoch, step])
            noise = rng.gumbel(size=(len(images) * samples, self.model_config.max_length + 1,
                                     len(vocabulary))).astype(np.float32)
            outputs = {k: np.asarray(v) for k, v in self.search.predict_on_batch(
                {key: inputs, "noise": noise}).items()}
            greedy = self.rewards(images, decoded_words(outputs, "greedy_", vocabulary))
            sampled_words = decoded_words(outputs, "sampled_", vocabulary)
            sampled = self.rewards(np.repeat(images, samples), sampled_words)
            tokens, targets, mask = teacher_forcing(outputs, "sampled_", vocabulary)
            x = {key: inputs, "tokens": tokens,
                 "advantage": (sampled.reward - np.repeat(greedy.reward, samples)
                               ).astype(np.float32)}
            if self.model_config.loss.attention_supervision:
                x["regions"] = self._sample_regions(model, np.repeat(images, samples),
                                                    sampled_words, tokens.shape[1])
            logs = model.train_on_batch(x, targets, sample_weight=mask * weights[:, None],
                                        return_dict=True)
            for name, values in (("reward", sampled.reward), ("cider", sampled.cider),
                                 ("absent", sampled.absent),
                                 ("greedy_reward", np.repeat(greedy.reward, samples))):
                sums[name] += float(np.sum(values * weights))
            sums["loss"] += float(logs["loss"]) * float(weights.sum())
            rows += float(weights.sum())
            callbacks.on_train_batch_end(step, logs)
        callbacks.on_epoch_end(epoch, logs)
        callbacks.on_train_end(logs)
        return {**{k: float(v) for k, v in logs.items()},
                **{name: total / max(rows, 1.0) for name, total in sums.items()}}

    def _sample_regions(self, model, images, captions, steps):
        records, instances = self.data.train, self.data.train_instances
        return np.stack([caption_regions(words, instances.get(records[i].image_id, []),
                                         (records[i].width, records[i].height),
                                         self.rewards.lexicon, model.grid_shape, steps)
                         for i, words in zip(images, captions)])

    def scores(self, model, logs, validation):
        row = super().scores(model, logs, validation)
        row.update({name: logs[name] for name in ("reward", "greedy_reward", "cider",
                                                  "absent")})
        return row
