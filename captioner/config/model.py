"""A captioner's configuration (``ModelConfig``): the encoder, the decoder (a section per
kind: ``captioner.config.decoders``), the loss and the grounding head's labels; and the
named presets."""

import dataclasses
import typing
from typing import Literal, Optional

from captioner.config import legacy
from captioner.config.base import (
    Config,
    check_positive,
    check_range,
    derived,
    option,
)
from captioner.config.decoders import DECODERS, LSTMDecoderConfig, TransformerConfig
from captioner.errors import ConfigError

Backbone = Literal["small", "mobilenet_v2", "resnet50", "inception_v3", "efficientnet_b0"]
BACKBONE_IMAGE_SIZES = {"small": 96, "inception_v3": 299}  # others: 224, keras.applications'


@dataclasses.dataclass
class EncoderConfig(Config):
    title = "encoder"
    MOST = {"image_size": 4096, "width": 1024}
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
    fine_tune: Optional[bool] = option(
        None,
        "train the CNN with the decoder; by default only a CNN without pretrained weights "
        "does: a pretrained one is kept fixed (--no-fine-tune, --freeze) and its grids "
        "cached, as --fine-tune trains it ~10x slower on a CPU")
    width: int = option(32, "channels of the small CNN's first stage (then doubled)")

    def check(self):
        if self.weights is None:
            self.weights = "none" if self.backbone == "small" else "imagenet"
        if self.fine_tune is None:  # a CNN learns from scratch; a pretrained one is kept
            self.fine_tune = self.weights == "none"
        if self.image_size is None:
            self.image_size = BACKBONE_IMAGE_SIZES.get(self.backbone, 224)
        check_positive(self, "image_size", "width")
        if self.backbone == "inception_v3" and self.image_size < 75:
            raise ConfigError(f"inception_v3 needs image_size >= 75. Received: {self.image_size}")
        if self.backbone != "small" and self.image_size < 32:
            raise ConfigError(f"{self.backbone} needs image_size >= 32. "
                              f"Received: {self.image_size}")


@dataclasses.dataclass
class LossConfig(Config):
    """What a captioner's training minimises beyond the cross-entropy: the loss weights
    (``captioner.models.captioner.Captioner.compute_loss``). Not the architecture: a run
    that starts from a trained model (``--init``) may set this section anew."""
    title = "loss: what the model learns from (--init may set it anew)"
    doubly_stochastic: float = option(
        0.1,
        "lambda of (1 - sum_t alpha_ti)^2 (eq. 14); the paper's 1.0 pulls a noun's "
        "attention off its object (docs: supervision)")
    attention_supervision: Optional[float] = option(
        None,
        "lambda of the attention outside the box of the object a word names (Liu et al. "
        "2017); by default 1.0 where the training split has boxes, else 0")
    supervised_words: Literal["nouns", "mentions"] = option(
        "nouns",
        "the words that attention supervision and the grounding head train at: the head "
        "noun of each mention of a boxed object; \"mentions\": its attribute words too "
        "(\"white\" of \"white star\" looks at that star's box)", advanced=True)
    grounding: Optional[float] = option(
        None,
        "weight of the grounding head's loss (the object each object word's attention "
        "read); by default 1.0 where the training split has boxes, else 0 (no head)")
    # Hard attention: the REINFORCE term and its baseline.
    reward_weight: float = option(
        0.1,
        "lambda_r of the REINFORCE term (the paper's code)", advanced=True)
    entropy_weight: float = option(
        0.002,
        "lambda_e of the entropy bonus (the paper's code)", advanced=True)
    baseline_decay: float = option(
        0.9,
        "b <- decay * b + (1 - decay) * cost, as the code does", advanced=True)
    credit: Literal["to_go", "caption"] = option(
        "to_go",
        "a sampled cell is judged by the cost of its word and the words after it; "
        "\"caption\": by the whole caption's (the paper)", advanced=True)

    def check(self):
        check_range(self, 0.0, 1.0, "baseline_decay")
        check_range(self, 0.0, float("inf"), "reward_weight", "entropy_weight",
                     "doubly_stochastic")
        for name in ("attention_supervision", "grounding"):
            if getattr(self, name) is not None:
                check_range(self, 0.0, float("inf"), name)


@dataclasses.dataclass
class GroundingConfig(Config):
    """The label space of the grounding head (``captioner.models.grounding``), which
    reads each word's attended place and says what object is there: set from the
    training split's instances and the vocabulary; empty (no head) without boxes."""
    MOST = {"units": 8192}
    categories: list = dataclasses.field(default_factory=list, metadata={
        "option": False, "help": "the object categories the head tells apart"})
    attributes: dict = dataclasses.field(default_factory=dict, metadata={
        "option": False, "help": "{attribute: [values]} the head reads, e.g. colours"})
    words: list = dataclasses.field(default_factory=list, metadata={
        "option": False, "help": "[[word id, label column], ...]: the vocabulary's words "
                                 "that name a category or an attribute value"})
    units: int = derived(256, "hidden units of the head")
    openers: list = dataclasses.field(default_factory=list, metadata={
        "option": False, "help": "[[word id, share, [9 flags]], ...]: the words that open a "
                                 "position phrase right after an object word in the training "
                                 "captions (\"on\", \"at\", \"in\"), how often they do, "
                                 "and which thirds of the image (across x down) the phrases "
                                 "they opened claimed: grounded decoding judges them by the "
                                 "place"})
    cells: bool = derived(False, "the head also reads each grid cell (whether an object is "
                                 "there, and its labels), trained on the boxes: grounded "
                                 "decoding counts objects by it (number words)")
    centres: bool = derived(False, "with cells: the head also says which cell holds an "
                                   "object's box centre, and grounded decoding counts the "
                                   "objects by their centres (objects that overlap stay "
                                   "apart) rather than by connected cells")

    @property
    def enabled(self):
        return bool(self.categories)

    def groups(self):
        """[(name, labels)]: "category" first, then each attribute by name; the head's
        output columns are the groups' labels in this order."""
        return [("category", list(self.categories))] + \
            [(name, list(self.attributes[name])) for name in sorted(self.attributes)]

    def check(self):
        if self.centres and not self.cells:
            raise ConfigError("grounding centres need cells (the head reads centres in "
                              "each cell)")
        columns = sum(len(labels) for _, labels in self.groups())
        if any(not (isinstance(pair, (list, tuple)) and len(pair) == 2
                    and 0 <= pair[1] < columns) for pair in self.words):
            raise ConfigError("grounding words must be [word id, label column] pairs with a "
                              f"column below {columns}")


LOSS_FIELDS = tuple(field.name for field in dataclasses.fields(LossConfig))


@dataclasses.dataclass
class ModelConfig(Config):
    MOST = {"vocab_size": 1_000_000, "max_length": 1000}
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    decoder: typing.Union[LSTMDecoderConfig, TransformerConfig] = dataclasses.field(
        default_factory=LSTMDecoderConfig)
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
        return super().from_dict(legacy.model_config(data, LOSS_FIELDS), where)

    def check(self):
        check_positive(self, "max_length")


PRESETS = {
    # For tests: a few thousand parameters, runs in seconds.
    "tiny": dict(encoder=dict(image_size=32, width=8),
                 decoder=dict(embedding_dim=16, lstm_units=32, attention_units=16, dropout=0.0,
                              positions="axes")),
    "default": {},
}


def preset(name):
    """Returns the ModelConfig of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset. Received: {name!r}; known: {', '.join(PRESETS)}")
    return ModelConfig.from_dict(PRESETS[name])
