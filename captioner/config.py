"""Model and training configuration: dataclasses that round-trip through JSON.

Each default has its reason beside it. Unknown keys are an error, never ignored, so a typo
in a config file cannot silently fall back to a default.
"""

import dataclasses

from captioner.errors import ConfigError

BACKBONES = ("small", "mobilenet_v2", "resnet50", "inception_v3", "efficientnet_b0")
ATTENTION_KINDS = ("soft", "hard")
HARD_INFERENCE = ("argmax", "expected")
EXPECTED_CONTEXT_DRAWS = ("step", "batch")
CREDITS = ("to_go", "caption")
SCORES = ("additive", "dot", "general", "concat", "scaled_dot", "multihead", "local")


def _from_dict(cls, data, where):
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object. Received: {type(data).__name__}")
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"Unknown keys in {where}: {', '.join(unknown)}. "
                          f"Known keys: {', '.join(sorted(names))}")
    return cls(**data)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}. Received: {name}={value!r}")


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer. Received: {name}={value!r}")


@dataclasses.dataclass
class EncoderConfig:
    backbone: str = "small"     # trains from scratch; no download needed
    weights: str = "none"       # "imagenet", "none" or a path to a weights file
    image_size: int = 96        # square input side; the small CNN maps 96 px to a 12x12 grid
    fine_tune: bool = True      # a from-scratch CNN must train; False freezes a pretrained one
    width: int = 32             # channels of the small CNN's first stage (doubled per stage)

    def __post_init__(self):
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_positive("image_size", self.image_size)
        _check_positive("width", self.width)
        if self.backbone == "inception_v3" and self.image_size < 75:
            raise ConfigError(f"inception_v3 needs image_size >= 75. Received: {self.image_size}")
        if self.backbone != "small" and self.image_size < 32:
            raise ConfigError(f"{self.backbone} needs image_size >= 32. Received: {self.image_size}")


@dataclasses.dataclass
class DecoderConfig:
    embedding_dim: int = 128    # word vectors; small vocabularies need little more
    lstm_units: int = 256       # the LSTM's state size (the paper uses 1000 on COCO)
    attention_units: int = 128  # width of the additive score's hidden layer
    dropout: float = 0.3        # before the output layer, as in the paper's code
    attention: str = "soft"     # soft: the expected context (deterministic, Section 4.2)
    score: str = "additive"     # Bahdanau's v^T tanh(W h + U a), the paper's f_att
    heads: int = 4              # multihead: heads of attention_units / heads each
    window: float = 3.0         # local: D, cells each side of the predicted centre
    window_truncate: bool = False  # local: True cuts off cells beyond D (Luong); on a grid
                                   # the Gaussian alone trains far better (README)
    doubly_stochastic: float = 1.0  # lambda of the penalty (1 - sum_t alpha_ti)^2 (eq. 14)
    # Hard attention (Section 4.1): one sampled cell per word, trained with REINFORCE.
    reward_weight: float = 0.1          # lambda_r of the REINFORCE term (the paper's code)
    entropy_weight: float = 0.002       # lambda_e of the entropy bonus (the paper's code)
    baseline_decay: float = 0.9         # b <- decay * b + (1 - decay) * cost, as the code does
    credit: str = "to_go"               # a cell is judged by the cost of its word and the
                                        # words after it; "caption": by the whole caption's
    expected_context_rate: float = 0.5  # share of steps given the expected context (4.1)
    expected_context_draw: str = "step" # "step": drawn per caption and word; "batch": once
    hard_inference: str = "argmax"      # decoding looks at the most likely cell, or "expected"

    def __post_init__(self):
        for name in ("embedding_dim", "lstm_units", "attention_units", "heads"):
            _check_positive(name, getattr(self, name))
        _check_choice("attention", self.attention, ATTENTION_KINDS)
        _check_choice("score", self.score, SCORES)
        if self.attention_units % self.heads:
            raise ConfigError(f"heads must divide attention_units ({self.attention_units}). "
                              f"Received: heads={self.heads}")
        if not self.window >= 0.5:
            raise ConfigError(f"window must be >= 0.5 cells. Received: window={self.window}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        _check_choice("hard_inference", self.hard_inference, HARD_INFERENCE)
        _check_choice("expected_context_draw", self.expected_context_draw, EXPECTED_CONTEXT_DRAWS)
        _check_choice("credit", self.credit, CREDITS)
        for name in ("baseline_decay", "expected_context_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]. Received: {name}={getattr(self, name)}")
        for name in ("reward_weight", "entropy_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if self.doubly_stochastic < 0:
            raise ConfigError("doubly_stochastic must be >= 0. "
                              f"Received: doubly_stochastic={self.doubly_stochastic}")


@dataclasses.dataclass
class ModelConfig:
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    vocab_size: int = 0         # set from the vocabulary the model is trained with
    vocab_hash: str = ""        # lets a mismatched vocab.json be refused before decoding
    max_length: int = 24        # longest caption generated, in words (without <start>)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = _from_dict(EncoderConfig, self.encoder, "encoder config")
        if isinstance(self.decoder, dict):
            self.decoder = _from_dict(DecoderConfig, self.decoder, "decoder config")
        _check_positive("max_length", self.max_length)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data, "model config")


RAM_REWARDS = ("correct", "log_likelihood")
RAM_EPOCHS = 200  # train.py --task ram's default: on 4,000 translated MNIST digits a
                  # 6-glimpse RAM has 14 % test error after 30 epochs, 4.6 % after 200
                  # (the README's benchmark)


@dataclasses.dataclass
class RamConfig:
    """The Recurrent Attention Model (captioner.models.ram); defaults after Mnih et al. 2014."""
    height: int = 60            # the input's size: the translated-digits canvas
    width: int = 60
    channels: int = 1
    classes: int = 10
    glimpses: int = 6           # N
    patch: int = 12             # g: every retina patch is g x g
    scales: int = 3             # k: patches of side g, 2g, 4g around each location
    glimpse_hidden: int = 128   # the "what" and "where" layers (the paper: 128)
    glimpse_units: int = 256    # g_t (the paper: 256)
    core_units: int = 256       # the LSTM core's state
    location_std: float = 0.1   # sigma of the Gaussian location policy, in [-1, 1] units
    first_glimpse: str = "random"  # in training, l_1 uniform in [-1, 1]^2 ("centre": fixed);
                                   # inference, and a single glimpse, start at the centre
    reinforce_weight: float = 1.0  # weight of the REINFORCE term
    reward: str = "correct"     # the locations' reward: 1 for a right answer (Mnih et al.
                                # 2014), or "log_likelihood": log p(true class), as in the
                                # variational bound of Ba et al. 2015 (a graded signal)
    seed: int = None            # seeds the location samples

    def __post_init__(self):
        for name in ("height", "width", "channels", "glimpses", "patch", "scales",
                     "glimpse_hidden", "glimpse_units", "core_units"):
            _check_positive(name, getattr(self, name))
        if not isinstance(self.classes, int) or self.classes < 2:
            raise ConfigError(f"classes must be at least 2. Received: classes={self.classes!r}")
        _check_choice("first_glimpse", self.first_glimpse, ("random", "centre"))
        _check_choice("reward", self.reward, RAM_REWARDS)
        if not self.location_std > 0:
            raise ConfigError(f"location_std must be > 0. Received: {self.location_std}")
        if self.reinforce_weight < 0:
            raise ConfigError(f"reinforce_weight must be >= 0. Received: {self.reinforce_weight}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data, "RAM config")


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 20            # the synthetic data set converges in about 15
    batch_size: int = 32        # images per step, one caption each, drawn anew every epoch
    learning_rate: float = 2e-3 # Adam; halved by the schedule below over the run
    min_learning_rate: float = 1e-4  # cosine decay ends here
    clipnorm: float = 5.0       # LSTMs like their gradients clipped
    seed: int = 0               # weights, data order and dropout all follow from it
    min_count: int = 2          # words seen fewer times in training captions become <unk>
    validation_images: int = 200  # captions generated for the per-epoch BLEU-4
    hard_warmup_epochs: int = 0  # hard attention: the expected-context share falls from 1
                                 # (soft attention) to its value over these epochs

    def __post_init__(self):
        for name in ("epochs", "batch_size", "validation_images"):
            _check_positive(name, getattr(self, name))
        if not isinstance(self.hard_warmup_epochs, int) or self.hard_warmup_epochs < 0:
            raise ConfigError("hard_warmup_epochs must be an integer >= 0. "
                              f"Received: {self.hard_warmup_epochs!r}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0. Received: {self.learning_rate}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data, "training config")


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
