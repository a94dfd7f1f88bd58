"""Model and training configuration: dataclasses that round-trip through JSON, one module
per section (each field is a command-line option: ``captioner.config.base``).

    base.py      option(), derived(), Config: what every section shares
    model.py     ModelConfig: EncoderConfig, LossConfig, GroundingConfig; presets
    decoders.py  LSTMDecoderConfig, TransformerConfig (DECODERS: one per decoder kind)
    training.py  TrainConfig and its sections (run, data, input, distribution, SCST)
    search.py    SearchConfig
    serve.py     ServeConfig (captioner serve)
    ram.py       RAMConfig
    legacy.py    every migration of an older format
"""

from captioner.config.base import Config, derived, field_choices, field_type, option
from captioner.config.decoders import (
    DECODERS,
    DecoderConfig,
    LSTMDecoderConfig,
    Score,
    TransformerConfig,
    attention_scores,
)
from captioner.config.model import (
    BACKBONE_IMAGE_SIZES,
    LOSS_FIELDS,
    PRESETS,
    Backbone,
    EncoderConfig,
    GroundingConfig,
    LossConfig,
    ModelConfig,
    preset,
)
from captioner.config.ram import RAM_EPOCHS, RAMConfig, RamConfig
from captioner.config.search import SearchConfig
from captioner.config.serve import ServeConfig
from captioner.config.training import (
    DataConfig,
    DistributionConfig,
    InputConfig,
    RunConfig,
    SelfCriticalConfig,
    TrainConfig,
    train_config_for,
)

__all__ = [
    "BACKBONE_IMAGE_SIZES", "DECODERS", "LOSS_FIELDS", "PRESETS", "RAM_EPOCHS", "Backbone",
    "Config", "DataConfig", "DecoderConfig", "DistributionConfig", "EncoderConfig",
    "GroundingConfig", "InputConfig", "LSTMDecoderConfig", "LossConfig", "ModelConfig",
    "RAMConfig", "RamConfig", "RunConfig", "Score", "SearchConfig", "SelfCriticalConfig",
    "ServeConfig",
    "TrainConfig", "TransformerConfig", "attention_scores", "derived", "field_choices",
    "field_type", "option", "preset", "train_config_for",
]
