"""Model and training configuration: dataclasses that round-trip through JSON.

Each section describes one thing: the encoder, the decoder's architecture (a section per
decoder ``kind``), the loss, the search, training. Each field is made by ``option(default,
help)``: the help gives the reason for the default and is also the help of the field's
command-line option (``captioner.cli.add_config_options``), so a new option is one field
here plus its use. A field's type says what the option takes: ``Literal[...]`` gives
its choices, ``bool`` a ``--name/--no-name`` switch. Fields that the data or the model set
(``derived``) are not options. Unknown keys are an error, never ignored, so a typo in a
config file cannot silently fall back to a default.
"""

import dataclasses
import typing
from typing import Literal, Optional

from captioner.errors import ConfigError

Backbone = Literal["small", "mobilenet_v2", "resnet50", "inception_v3", "efficientnet_b0"]
# the attention scores: captioner.layers.attention.ATTENTION_LAYERS registers one layer each
Score = Literal["additive", "dot", "general", "concat", "scaled_dot", "multihead", "local"]
BACKBONE_IMAGE_SIZES = {"small": 96, "inception_v3": 299}  # others: 224, keras.applications'


def option(default, help, flag=None, metavar=None):
    """A field that is a command-line option (``captioner.cli.add_config_options``):
    ``help`` is its help text (the reason for its default), ``flag`` its name where it is
    not ``--field-name``, ``metavar`` what --help calls its value (the field's name)."""
    metadata = {"help": help}
    if flag:
        metadata["flag"] = flag
    if metavar:
        metadata["metavar"] = metavar
    return dataclasses.field(default=default, metadata=metadata)


def derived(default, help=""):
    """A field set from the data or the model, not by a command-line option."""
    return dataclasses.field(default=default, metadata={"option": False, "help": help})


def attention_scores():
    """The attention scores a decoder can use (the layer registry has one layer each)."""
    return typing.get_args(Score)


def field_choices(field):
    """The values a field may take, or None: a ``Literal``'s."""
    if typing.get_origin(field.type) is Literal:
        return typing.get_args(field.type)
    return None


def field_type(field):
    """The Python type of a field's values: int, float, str or bool."""
    kind = field.type
    if typing.get_origin(kind) is Literal:
        return type(typing.get_args(kind)[0])
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


class Config:
    """What every configuration section shares: dict round trips and validation of the
    fields' types and choices. Subclasses are dataclasses and add range checks in
    ``check``."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), field_type(field)
            if isinstance(kind, type) and issubclass(kind, Config):
                continue
            if value is None and typing.get_origin(field.type) is typing.Union:
                continue
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                object.__setattr__(self, field.name, value)  # frozen sections too
            if kind in (int, float, str, bool) and (not isinstance(value, kind)
                                                    or (kind is int and isinstance(value, bool))):
                raise ConfigError(f"{field.name} must be {kind.__name__}. "
                                  f"Received: {field.name}={value!r}")
            choices = field_choices(field)
            if choices is not None and value not in choices:
                raise ConfigError(f"{field.name} must be one of {', '.join(map(str, choices))}. "
                                  f"Received: {field.name}={value!r}")
        self.check()

    def check(self):
        """Range checks beyond type and choices; raises ConfigError."""

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, where=None):
        where = where or f"{cls.__name__} section"
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a JSON object. Received: {type(data).__name__}")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"Unknown keys in {where}: {', '.join(unknown)}. "
                              f"Known keys: {', '.join(sorted(names))}")
        return cls(**data)


def _check_positive(config, *names):
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer. Received: {name}={value!r}")


def _check_range(config, low, high, *names):
    for name in names:
        value = getattr(config, name)
        if not low <= value <= high:
            raise ConfigError(f"{name} must be in [{low}, {high}]. Received: {name}={value}")


@dataclasses.dataclass
class EncoderConfig(Config):
    backbone: Backbone = option(
        "small",
        "the small CNN trains from scratch; no download needed")
    weights: Optional[str] = option(
        None,
        "imagenet, none, or a weights file; by default none for the small CNN and imagenet "
        "for the others")
    image_size: Optional[int] = option(
        None,
        "square input side; by default 96 for the small CNN (a 12x12 grid), 299 for "
        "inception_v3, 224 for the others")
    fine_tune: bool = option(
        True,
        "a from-scratch CNN must train; --no-fine-tune (or --freeze) keeps a pretrained one"
        " fixed and caches its feature grids")
    width: int = option(32, "channels of the small CNN's first stage (doubled per stage)")

    def check(self):
        if self.weights is None:
            self.weights = "none" if self.backbone == "small" else "imagenet"
        if self.image_size is None:
            self.image_size = BACKBONE_IMAGE_SIZES.get(self.backbone, 224)
        _check_positive(self, "image_size", "width")
        if self.backbone == "inception_v3" and self.image_size < 75:
            raise ConfigError(f"inception_v3 needs image_size >= 75. Received: {self.image_size}")
        if self.backbone != "small" and self.image_size < 32:
            raise ConfigError(f"{self.backbone} needs image_size >= 32. "
                              f"Received: {self.image_size}")


@dataclasses.dataclass
class DecoderConfig(Config):
    """The LSTM decoder's architecture (``captioner.models.decoder``): the decoder of
    ``kind`` "lstm". Another kind of decoder has a section of its own."""
    kind: Literal["lstm"] = option("lstm", "the decoder: lstm, Show, Attend and Tell's LSTM "
                                   "that attends over the grid at every word",
                                   flag="--decoder")
    embedding_dim: int = option(128, "word vectors; small vocabularies need little more")
    lstm_units: int = option(256, "the LSTM's state size (the paper uses 1000 on COCO)")
    attention_units: int = option(128, "width of the attention's hidden layer or heads")
    dropout: float = option(0.3, "before the output layer, as in the paper's code")
    attention: Literal["soft", "hard"] = option(
        "soft",
        "soft: the expected context (deterministic, Section 4.2); hard: one sampled cell "
        "per word (4.1)")
    score: Score = option(
        "additive",
        "the attention score (soft and hard alike); additive: Bahdanau's v^T tanh(W h + U "
        "a), the paper's")
    heads: int = option(4, "multihead: heads, each of --attention-units / --heads units")
    window: float = option(3.0, "local: D, cells each side of the predicted centre")
    window_truncate: bool = option(
        False,
        "local: attend only within D of the centre (Luong); on a grid the Gaussian alone "
        "trains far better (docs: the attention family)")
    # Hard attention (Section 4.1): one sampled cell per word, trained with REINFORCE.
    expected_context_rate: float = option(
        0.5,
        "share of steps given the expected context (4.1)")
    expected_context_draw: Literal["step", "batch"] = option(
        "step",
        "draw that choice per caption and word, or once per batch (the paper's code)")
    hard_inference: Literal["argmax", "expected"] = option(
        "argmax",
        "decoding looks at the most likely cell, or takes the expected context")

    def check(self):
        _check_positive(self, "embedding_dim", "lstm_units", "attention_units", "heads")
        if self.attention_units % self.heads:
            raise ConfigError(f"heads must divide attention_units ({self.attention_units}). "
                              f"Received: heads={self.heads}")
        if not self.window >= 0.5:
            raise ConfigError(f"window must be >= 0.5 cells. Received: window={self.window}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        _check_range(self, 0.0, 1.0, "expected_context_rate")

    default_learning_rate = 2e-3  # Adam's starting rate unless --learning-rate is given

    @property
    def hard(self):
        """Whether the decoder samples one cell per word (hard attention)."""
        return self.attention == "hard"

    def summary(self):
        """The decoder in a few words (model cards)."""
        return f"LSTM decoder with {self.attention} {self.score} attention"


@dataclasses.dataclass
class TransformerConfig(Config):
    """The Transformer decoder's architecture (``captioner.models.transformer``): the
    decoder of ``kind`` "transformer" (Vaswani et al. 2017). Each layer: causal multi-head
    self-attention over the words, multi-head cross-attention over the grid, a
    feed-forward net; the grid cells carry a 2-D position encoding."""
    kind: Literal["transformer"] = option(
        "transformer", "transformer: words attend to the earlier words and to the grid",
        flag="--decoder")
    layers: int = option(
        1,
        "decoder layers: at equal training time on the hard synthetic set one layer captions "
        "best (docs: self-attention)")
    heads: int = option(4, "attention heads per layer, each of --model-width / --heads units")
    model_width: int = option(
        256, "the width of the word vectors and of every layer (Vaswani's d-model)")
    ff_width: int = option(
        1024, "the feed-forward nets' hidden width (4 x --model-width, as Vaswani)")
    dropout: float = option(0.1, "after every sub-layer and on the embeddings (Vaswani)")
    norm: Literal["pre", "post"] = option(
        "pre",
        "layer norm before each sub-layer (pre: trains without warm-up) or after the "
        "residual sum (post: Vaswani's)")
    encoder_layers: int = option(
        0,
        "self-attention layers over the grid before the decoder (0: the CNN's grid as it is)")
    attention_map: Literal["last_layer", "all_layers", "first_layer"] = option(
        "last_layer",
        "the per-word map (heat maps, supervision, attention correctness): the mean over "
        "heads of the last layer's cross-attention, of every layer's, or of the first's "
        "(docs: self-attention)")

    hard = False  # its attention is soft: the expected value over the grid
    # Adam's starting rate unless --learning-rate is given: on the hard synthetic set,
    # 3 epochs, 1e-3 and 5e-4 train it far better than the LSTM's 2e-3 (README)
    default_learning_rate = 1e-3

    def summary(self):
        """The decoder in a few words (model cards)."""
        grid = f", {self.encoder_layers} grid encoder layers" if self.encoder_layers else ""
        return (f"Transformer decoder, {self.layers} layers of {self.heads} heads, d_model "
                f"{self.model_width}, {self.norm}-norm{grid}; maps: {self.attention_map}")

    def check(self):
        _check_positive(self, "layers", "heads", "model_width", "ff_width")
        if self.model_width % self.heads:
            raise ConfigError(f"heads must divide model_width ({self.model_width}). "
                              f"Received: heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.encoder_layers < 0:
            raise ConfigError(f"encoder_layers must be >= 0. Received: {self.encoder_layers}")


@dataclasses.dataclass
class LossConfig(Config):
    """What a captioner's training minimises beyond the cross-entropy: the loss weights
    (``captioner.models.captioner.Captioner.compute_loss``). Not the architecture: a run
    that starts from a trained model (``--init``) may set this section anew."""
    doubly_stochastic: float = option(
        0.1,
        "lambda of the penalty (1 - sum_t alpha_ti)^2 (eq. 14); the paper's 1.0 pushes a "
        "noun's attention off the object its colour word looked at (docs: supervision)")
    attention_supervision: Optional[float] = option(
        None,
        "lambda of the attention mass outside the box of the object a caption word names "
        "(Liu et al. 2017); by default 1.0 where the training split has an instances file "
        "(boxes), else 0")
    supervised_words: Literal["nouns", "mentions"] = option(
        "nouns",
        "the words that attention supervision and the grounding head train at: the head "
        "noun of each mention of a boxed object; \"mentions\": its attribute words too "
        "(\"white\" of \"white star\" looks at that star's box)")
    grounding: Optional[float] = option(
        None,
        "weight of the grounding head's loss: from what each object word's attention read, "
        "the category and attributes of the object it names; by default 1.0 where the "
        "training split has an instances file (boxes), else 0 (no head)")
    # Hard attention: the REINFORCE term and its baseline.
    reward_weight: float = option(0.1, "lambda_r of the REINFORCE term (the paper's code)")
    entropy_weight: float = option(
        0.002,
        "lambda_e of the entropy bonus (the paper's code)")
    baseline_decay: float = option(
        0.9,
        "b <- decay * b + (1 - decay) * cost, as the code does")
    credit: Literal["to_go", "caption"] = option(
        "to_go",
        "a sampled cell is judged by the cost of its word and the words after it; "
        "\"caption\": by the whole caption's (the paper)")

    def check(self):
        _check_range(self, 0.0, 1.0, "baseline_decay")
        _check_range(self, 0.0, float("inf"), "reward_weight", "entropy_weight",
                     "doubly_stochastic")
        for name in ("attention_supervision", "grounding"):
            if getattr(self, name) is not None:
                _check_range(self, 0.0, float("inf"), name)


@dataclasses.dataclass
class GroundingConfig(Config):
    """The label space of the grounding head (``captioner.models.grounding``), which
    reads each word's attended place and says what object is there: set from the
    training split's instances and the vocabulary; empty (no head) without boxes."""
    categories: list = dataclasses.field(default_factory=list, metadata={
        "option": False, "help": "the object categories the head tells apart"})
    attributes: dict = dataclasses.field(default_factory=dict, metadata={
        "option": False, "help": "{attribute: [values]} the head reads, e.g. colours"})
    words: list = dataclasses.field(default_factory=list, metadata={
        "option": False, "help": "[[word id, label column], ...]: the vocabulary's words "
                                 "that name a category or an attribute value"})
    units: int = derived(256, "hidden units of the head")

    @property
    def enabled(self):
        return bool(self.categories)

    def groups(self):
        """[(name, labels)]: "category" first, then each attribute by name; the head's
        output columns are the groups' labels in this order."""
        return [("category", list(self.categories))] + \
            [(name, list(self.attributes[name])) for name in sorted(self.attributes)]

    def check(self):
        columns = sum(len(labels) for _, labels in self.groups())
        if any(not (isinstance(pair, (list, tuple)) and len(pair) == 2
                    and 0 <= pair[1] < columns) for pair in self.words):
            raise ConfigError("grounding words must be [word id, label column] pairs with a "
                              f"column below {columns}")


DECODERS = {"lstm": DecoderConfig,  # decoder kind -> its architecture section
            "transformer": TransformerConfig}
LOSS_FIELDS = tuple(field.name for field in dataclasses.fields(LossConfig))


@dataclasses.dataclass
class ModelConfig(Config):
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    decoder: typing.Union[DecoderConfig, TransformerConfig] = dataclasses.field(
        default_factory=DecoderConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    grounding: GroundingConfig = dataclasses.field(default_factory=GroundingConfig)
    vocab_size: int = derived(0, "set from the vocabulary the model is trained with")
    vocab_hash: str = derived("", "lets a mismatched vocab.json be refused before decoding")
    max_length: int = derived(
        24,
        "longest caption generated, in words (without <start>): the training captions' "
        "longest, at most 40")

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig.from_dict(self.encoder, "encoder config")
        if isinstance(self.decoder, dict):
            decoder = self.decoder
            kind = decoder.get("kind", "lstm")
            if kind not in DECODERS:
                raise ConfigError(f"Unknown decoder kind. Received: kind={kind!r}; known: "
                                  f"{', '.join(DECODERS)}")
            self.decoder = DECODERS[kind].from_dict(decoder, "decoder config")
        if isinstance(self.loss, dict):
            self.loss = LossConfig.from_dict(self.loss, "loss config")
        if isinstance(self.grounding, dict):
            self.grounding = GroundingConfig.from_dict(self.grounding, "grounding config")
        super().__post_init__()

    @classmethod
    def from_dict(cls, data, where=None):
        """Also reads configurations from before the loss section, whose decoder held the
        loss weights (old model folders, checkpoints and config files)."""
        if isinstance(data, dict) and isinstance(data.get("decoder"), dict):
            decoder = dict(data["decoder"])
            moved = {name: decoder.pop(name) for name in LOSS_FIELDS if name in decoder}
            if moved:
                if "loss" in data:
                    raise ConfigError("loss weights in both the decoder and the loss config: "
                                      f"{', '.join(sorted(moved))}")
                data = {**data, "decoder": decoder, "loss": moved}
        return super().from_dict(data, where)

    def check(self):
        _check_positive(self, "max_length")


RAM_EPOCHS = 200  # train.py --task ram's default: on 4,000 translated MNIST digits a
                  # 6-glimpse RAM has 14 % test error after 30 epochs, 4.6 % after 200
                  # (the README's benchmark)


@dataclasses.dataclass
class RamConfig(Config):
    """The Recurrent Attention Model (captioner.models.ram); defaults after Mnih et al. 2014."""
    height: int = derived(60, "the input's size: the translated-digits canvas")
    width: int = derived(60, "the input's width")
    channels: int = derived(1, "the input's channels (1: grey)")
    classes: int = derived(10, "classes the model tells apart")
    glimpses: int = option(6, "N, glimpses per image")
    patch: int = option(12, "g: every retina patch is g x g")
    scales: int = option(3, "k: patches of side g, 2g, 4g, ... around each location")
    glimpse_hidden: int = option(128, "the \"what\" and \"where\" layers (the paper: 128)")
    glimpse_units: int = option(256, "g_t (the paper: 256)")
    core_units: int = option(256, "the LSTM core's state")
    location_std: float = option(
        0.1,
        "sigma of the Gaussian location policy, in [-1, 1] units")
    first_glimpse: Literal["random", "centre"] = option(
        "random",
        "in training, l_1 uniform in [-1, 1]^2 (or the centre); inference, and a single "
        "glimpse, start at the centre")
    reinforce_weight: float = option(1.0, "weight of the REINFORCE term")
    reward: Literal["correct", "log_likelihood"] = option(
        "correct",
        "the locations' reward: 1 for a right answer (Mnih et al. 2014), or log p(true "
        "class), as in the variational bound of Ba et al. 2015 (graded)")
    seed: Optional[int] = derived(None, "seeds the location samples")

    def check(self):
        _check_positive(self, "height", "width", "channels", "glimpses", "patch", "scales",
                        "glimpse_hidden", "glimpse_units", "core_units")
        if self.classes < 2:
            raise ConfigError(f"classes must be at least 2. Received: classes={self.classes!r}")
        if not self.location_std > 0:
            raise ConfigError(f"location_std must be > 0. Received: {self.location_std}")
        if self.reinforce_weight < 0:
            raise ConfigError(f"reinforce_weight must be >= 0. Received: {self.reinforce_weight}")


@dataclasses.dataclass
class RunConfig(Config):
    """How long a run is and how much it checks each epoch: a resume may change it."""
    epochs: int = option(
        40,
        "passes over the training images (--task ram: 200 by default)")
    validation_images: int = option(
        200, "captions generated per epoch for the validation scores")

    def check(self):
        _check_positive(self, "epochs", "validation_images")


@dataclasses.dataclass
class DataConfig(Config):
    """What the captioner learns from the training captions: another value makes another
    run (a resume refuses it)."""
    min_count: int = option(2, "words seen fewer times in training captions become <unk>")
    max_words: int = option(
        40,
        "captions are cut after this many words: the decoder's steps per caption, and the "
        "longest caption it generates")
    length_bucket: int = option(
        4,
        "a batch runs as many decoder steps as its longest caption, rounded up to a "
        "multiple of this (0: always --max-words + 1)")

    def check(self):
        _check_positive(self, "max_words")
        if self.length_bucket < 0:
            raise ConfigError(f"length_bucket must be an integer >= 0. "
                              f"Received: {self.length_bucket!r}")


@dataclasses.dataclass
class InputConfig(Config):
    """How the training images are read: a resume may change it (the batches are the
    same)."""
    pipeline: Literal["auto", "tf.data", "python"] = option(
        "auto",
        "how training images are read: tf.data's parallel decoding (auto: when TensorFlow "
        "is installed) or Python threads; the batches are the same")
    bad_images: Literal["skip", "error"] = option(
        "skip",
        "an unreadable training image: skipped (weight 0), named and counted when it is "
        "met, or every image read before the first step and the run refused if any fails")
    image_cache_mb: int = option(
        2048,
        "memory for decoded training images (uint8 at the model's size), filled as the "
        "first epoch reads them; images beyond it are decoded every epoch")


@dataclasses.dataclass
class DistributionConfig(Config):
    """Where training runs: a resume may change it (a checkpoint resumes on another
    number of devices)."""
    distribute: bool = option(
        False,
        "data-parallel over every visible device (JAX: keras.distribution.DataParallel; "
        "TensorFlow: MirroredStrategy); the global batch is --batch-size, split among them")
    devices: Optional[int] = option(None, "with --distribute: only the first N devices")


@dataclasses.dataclass
class SelfCriticalConfig(Config):
    """Self-critical sequence training (``captioner.training.scst``) of an --init model."""
    scst: bool = option(
        False,
        "self-critical sequence training (Rennie et al. 2017) of the --init model: captions"
        " sampled from it, rewarded by their CIDEr-D minus the greedy caption's")
    scst_samples: int = option(5, "--scst: captions sampled per image and step")
    scst_learning_rate: float = option(
        2e-4,
        "--scst: Adam's rate at the start, a tenth of the LSTM's cross-entropy rate: it "
        "fine-tunes a trained model")
    hallucination_penalty: float = option(
        0.0,
        "--scst: taken from a sampled caption's reward for each object it names that the "
        "image does not hold (needs the instances file)")

    mispairing_penalty: float = option(
        0.0,
        "--scst: taken from a sampled caption's reward, on top of the hallucination "
        "penalty, for each mis-paired mention (its category and attribute both in the "
        "image, on different objects: \"a white star\" for a black star and a white "
        "circle); needs the instances file")

    def check(self):
        _check_positive(self, "scst_samples")
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
    batch_size: int = option(32, "images per step, one caption each, drawn anew every epoch")
    learning_rate: Optional[float] = option(
        None,
        "Adam's, at the start of the cosine decay; by default the decoder's: 2e-3 for the "
        "LSTM, 1e-3 for the Transformer")
    min_learning_rate: float = option(1e-4, "where the cosine decay ends")
    clipnorm: float = option(5.0, "LSTMs like their gradients clipped")
    seed: int = option(0, "weights, data order and dropout all follow from it")
    hard_warmup_epochs: int = option(
        0,
        "hard attention: the expected-context share falls from 1 (soft attention) to its "
        "value over these epochs")
    dtype_policy: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = option(
        "auto",
        "Keras dtype policy of training: mixed_* compute in 16 bits with float32 weights "
        "(softmaxes, losses and attention sums in float32; float16 with loss scaling); auto: "
        "mixed_bfloat16 on a GPU or TPU, float32 on CPUs (where bfloat16's gain depends on "
        "the processor and the backend); a saved model loads into any policy")
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
        """Also reads the flat dicts of runs from before the sections."""
        if isinstance(data, dict) and not any(isinstance(v, dict) for v in data.values()):
            flat = dict(data)
            if any(key not in {f.name for f in dataclasses.fields(cls)} for key in flat):
                return cls.of(**flat)
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
        _check_positive(self, "batch_size")
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
        return getattr(decoder, "default_learning_rate", DecoderConfig.default_learning_rate)


@dataclasses.dataclass(frozen=True)
class SearchConfig(Config):
    """How captions are searched for (``captioner.search``): greedy, or beam search.
    Frozen: a captioner keeps one compiled search per config
    (``ImageCaptioner.search``)."""
    beam: int = option(1, "beam size K; 1 is greedy search (one caption per image)",
                       metavar="K")
    n_best: int = option(1, "captions per image, best first (at most --beam)", metavar="N")
    length_penalty: float = option(
        0.0,
        "beam search ranks by log-probability / length ** ALPHA (0: the total, which "
        "favours short captions; 1: the mean per word)", metavar="ALPHA")
    min_length: int = option(0, "beam search: <end> is not allowed before this many words")
    max_length: Optional[int] = option(
        None,
        "most words per caption (default: the model's)")
    grounded: Optional[float] = option(
        None,
        "grounded decoding: an object word loses W x how much less likely the grounding "
        "head finds what it names than what the head reads at the place the model looked "
        "for it (log-probabilities; 0: off); by default 1 for a model with a grounding "
        "head, which raised object precision, recall and CIDEr-D on unseen data, "
        "else 0", metavar="W")

    def check(self):
        _check_positive(self, "beam")
        if self.grounded is not None:
            _check_range(self, 0.0, float("inf"), "grounded")
        if not 1 <= self.n_best <= self.beam:
            raise ConfigError(f"need 1 <= n_best <= beam (--n-best, --beam). Received: "
                              f"beam={self.beam}, n_best={self.n_best}")
        if self.min_length < 0:
            raise ConfigError(f"min_length must be >= 0. Received: {self.min_length}")
        if self.max_length is not None:
            _check_positive(self, "max_length")

    @property
    def name(self):
        """"greedy" or "beamK", for file names and reports."""
        return "greedy" if self.beam == 1 else f"beam{self.beam}"


PRESETS = {
    # For tests: a few thousand parameters, runs in seconds.
    "tiny": dict(encoder=dict(image_size=32, width=8),
                 decoder=dict(embedding_dim=16, lstm_units=32, attention_units=16, dropout=0.0)),
    "default": {},
}


def preset(name):
    """Returns the ModelConfig of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset. Received: {name!r}; known: {', '.join(PRESETS)}")
    return ModelConfig.from_dict(PRESETS[name])
