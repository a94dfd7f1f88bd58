"""Training's configuration: ``TrainConfig``, the optimisation, with a section each for the
run's length, the data, the input pipeline, the distribution and self-critical training."""

import dataclasses
from typing import Literal, Optional

from captioner.config import legacy
from captioner.config.base import Config, check_positive, option
from captioner.config.decoders import LSTMDecoderConfig
from captioner.config.ram import RAM_EPOCHS
from captioner.errors import ConfigError


@dataclasses.dataclass
class RunConfig(Config):
    """How long a run is and how much it checks each epoch: a resume may change it."""
    title = "run length (a resume may change it)"
    epochs: int = option(
        40,
        "passes over the training images (train-ram: 200)")
    validation_images: int = option(
        200, "validation images captioned and scored each epoch")

    def check(self):
        check_positive(self, "epochs", "validation_images")


@dataclasses.dataclass
class DataConfig(Config):
    """What the captioner learns from the training captions: another value makes another
    run (a resume refuses it)."""
    title = "data"
    min_count: int = option(2, "words seen fewer times in training captions become <unk>")
    max_words: int = option(
        40,
        "captions are cut after this many words (the longest caption generated)")
    length_bucket: int = option(
        4,
        "a batch runs as many decoder steps as its longest caption, rounded up to a "
        "multiple of this (0: always --max-words + 1)", advanced=True)

    def check(self):
        check_positive(self, "max_words")
        if self.length_bucket < 0:
            raise ConfigError(f"length_bucket must be an integer >= 0. "
                              f"Received: {self.length_bucket!r}")


@dataclasses.dataclass
class InputConfig(Config):
    """How the training images are read: a resume may change it (the batches are the
    same)."""
    title = "input (a resume may change it)"
    pipeline: Literal["auto", "tf.data", "python"] = option(
        "auto",
        "tf.data (auto: where TensorFlow is installed) or Python threads: the same batches")
    bad_images: Literal["skip", "error"] = option(
        "skip",
        "an unreadable training image is skipped and counted, or (error) the run refused "
        "before its first step")
    image_cache_mb: int = option(
        2048,
        "memory for decoded training images (uint8 at the model's size), filled as the "
        "first epoch reads them; images beyond it are decoded every epoch", advanced=True)


@dataclasses.dataclass
class DistributionConfig(Config):
    """Where training runs: a resume may change it (a checkpoint resumes on another
    number of devices)."""
    title = "distribution (a resume may change it)"
    distribute: bool = option(
        False,
        "data-parallel over every visible device (keras.distribution on JAX, "
        "MirroredStrategy on TensorFlow); --batch-size is the global batch")
    devices: Optional[int] = option(None, "with --distribute: only the first N devices")


@dataclasses.dataclass
class SelfCriticalConfig(Config):
    """Self-critical sequence training (``captioner.training.scst``) of an --init model."""
    title = "self-critical fine-tuning (--scst, of an --init model)"
    scst: bool = option(
        False,
        "self-critical training (Rennie et al. 2017) of the --init model: sampled captions "
        "rewarded by CIDEr-D minus the greedy caption's")
    scst_samples: int = option(5, "--scst: captions sampled per image and step")
    scst_learning_rate: float = option(
        2e-4,
        "--scst: Adam's rate at the start, a tenth of the LSTM's cross-entropy rate: it "
        "fine-tunes a trained model", advanced=True)
    hallucination_penalty: float = option(
        0.0,
        "--scst: taken from the reward per object named that the image lacks (needs boxes)")

    mispairing_penalty: float = option(
        0.0,
        "--scst: taken from a sampled caption's reward, on top of the hallucination "
        "penalty, for each mis-paired mention (its category and attribute both in the "
        "image, on different objects: \"a white star\" for a black star and a white "
        "circle); needs the instances file", advanced=True)

    def check(self):
        check_positive(self, "scst_samples")
        if self.scst_learning_rate <= 0:
            raise ConfigError(f"scst_learning_rate must be > 0. "
                              f"Received: {self.scst_learning_rate}")
        for name in ("hallucination_penalty", "mispairing_penalty"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0. Received: {getattr(self, name)}")


@dataclasses.dataclass
class TrainConfig(Config):
    """Training: the optimisation (its own fields) and a section each for the run's length,
    the data, the input pipeline, the distribution and self-critical training. A resumed
    run may change exactly the sections in ``RESUMABLE``; field names are unique across
    the sections, so each is one command-line option (``TrainConfig.of`` takes them
    flat)."""
    title = "training"
    batch_size: int = option(32, "images per step, one caption each, drawn anew every epoch")
    learning_rate: Optional[float] = option(
        None,
        "Adam's first rate (cosine decay); by default the decoder's: 2e-3 for the LSTM, "
        "1e-3 for the Transformer")
    min_learning_rate: float = option(1e-4, "where the cosine decay ends", advanced=True)
    clipnorm: float = option(5.0, "LSTMs like their gradients clipped", advanced=True)
    seed: int = option(0, "the weights, data order and dropout follow from it")
    hard_warmup_epochs: int = option(
        0,
        "hard attention: the expected-context share falls from 1 (soft attention) to its "
        "value over these epochs", advanced=True)
    dtype_policy: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = option(
        "auto",
        "Keras dtype policy: mixed_* compute in 16 bits, weights and sums in float32; auto: "
        "mixed_bfloat16 on a GPU or TPU, float32 on CPUs; a saved model loads into any")
    run: RunConfig = dataclasses.field(default_factory=RunConfig, metadata={
        "help": "how long, and how much validated"})
    data: DataConfig = dataclasses.field(default_factory=DataConfig, metadata={
        "help": "the words learnt"})
    input: InputConfig = dataclasses.field(default_factory=InputConfig, metadata={
        "help": "how images are read"})
    distribution: DistributionConfig = dataclasses.field(
        default_factory=DistributionConfig, metadata={"help": "where training runs"})
    self_critical: SelfCriticalConfig = dataclasses.field(
        default_factory=SelfCriticalConfig, metadata={"help": "self-critical training"})

    RESUMABLE = ("run", "input", "distribution")  # the sections a resumed run may change

    def __post_init__(self):
        for name, section in self.sections().items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, section.from_dict(value, f"training {name} config"))
        super().__post_init__()

    @classmethod
    def sections(cls):
        """{section name: its Config class}."""
        return {field.name: field.type for field in dataclasses.fields(cls)
                if isinstance(field.type, type) and issubclass(field.type, Config)}

    @classmethod
    def of(cls, **values):
        """A TrainConfig from flat field names (``epochs=1, max_words=8``), each routed
        to its section: what the command line gives, and how old config files wrote it."""
        owner = {field.name: name for name, section in cls.sections().items()
                 for field in dataclasses.fields(section)}
        top = {key: value for key, value in values.items() if key not in owner}
        nested = {name: {} for name in cls.sections()}
        for key, value in values.items():
            if key in owner:
                nested[owner[key]][key] = value
        return cls.from_dict({**top, **nested})

    @classmethod
    def from_dict(cls, data, where=None):
        if legacy.is_flat_train_config(data, {f.name for f in dataclasses.fields(cls)}):
            return cls.of(**data)
        return super().from_dict(data, where)

    def flat(self):
        """{field name: value} of every field, the sections' included (``of``'s inverse)."""
        values = {}
        for name, value in self.to_dict().items():
            values.update(value if name in self.sections() else {name: value})
        return values

    def changed_on_resume(self, before):
        """The names of the fields outside the ``RESUMABLE`` sections where ``before`` (the
        TrainConfig of the run being resumed) differs."""
        changed = []
        for field in dataclasses.fields(self):
            if field.name in self.RESUMABLE:
                continue
            mine, theirs = getattr(self, field.name), getattr(before, field.name)
            if isinstance(mine, Config):
                changed += [key for key, value in mine.to_dict().items()
                            if theirs.to_dict()[key] != value]
            elif mine != theirs:
                changed.append(field.name)
        return sorted(changed)

    def check(self):
        check_positive(self, "batch_size")
        if self.hard_warmup_epochs < 0:
            raise ConfigError(f"hard_warmup_epochs must be an integer >= 0. "
                              f"Received: {self.hard_warmup_epochs!r}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0. Received: {self.learning_rate}")

    def learning_rate_of(self, model_config):
        """Adam's starting rate for a model: ``learning_rate`` where given, else its
        decoder's default (2e-3 for models without a decoder)."""
        if self.learning_rate is not None:
            return self.learning_rate
        decoder = getattr(model_config, "decoder", None)
        return getattr(decoder, "default_learning_rate", LSTMDecoderConfig.default_learning_rate)


def train_config_for(task, **given):
    """The TrainConfig of ``task`` ("caption" or "ram") with the ``given`` fields: the
    defaults the fields leave to the task (the RAM trains for ``RAM_EPOCHS`` epochs, in
    float32)."""
    if task == "ram" and given.get("epochs") is None:
        given["epochs"] = RAM_EPOCHS
    if task == "ram" and given.get("dtype_policy") is None:
        given["dtype_policy"] = "float32"  # a small model: 16 bits would gain nothing
    return TrainConfig.of(**{key: value for key, value in given.items() if value is not None})
