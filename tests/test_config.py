"""Configuration: the one path from a dataclass field to a command-line option."""

import dataclasses
from typing import Literal, Optional

import pytest

from captioner.cli import ArgumentParser, add_config_options, config_from_args
from captioner.config import (
    Config,
    EncoderConfig,
    LossConfig,
    LSTMDecoderConfig,
    ModelConfig,
    RAMConfig,
    SearchConfig,
    TrainConfig,
    derived,
    option,
)
from captioner.errors import ConfigError


@dataclasses.dataclass
class ToyConfig(Config):
    size: int = option(3, "how big it is")
    rate: float = option(0.5, "how fast; said on two lines so the help joins them")
    kind: Literal["a", "b"] = option("a", "which one", flag="--variety")
    switch: bool = option(False, "turn it on")
    limit: Optional[int] = option(None, "no limit by default")
    count: int = derived(0, "set by the data")


def parse(config_class, argv):
    parser = ArgumentParser(prog="test")
    add_config_options(parser, config_class, "toy")
    return parser, parser.parse_args(argv)


def test_a_field_is_an_option_with_its_type_choices_and_comment():
    parser, args = parse(ToyConfig, ["--size", "7", "--variety", "b", "--switch", "--rate", "2"])
    config = config_from_args(ToyConfig, args, count=5)
    assert config == ToyConfig(size=7, rate=2.0, kind="b", switch=True, limit=None, count=5)
    assert config_from_args(ToyConfig, parse(ToyConfig, [])[1]) == ToyConfig()  # defaults kept
    assert config_from_args(ToyConfig, parse(ToyConfig, ["--no-switch"])[1]).switch is False
    text = parser.format_help()
    assert "how fast; said on two lines so the help joins them (default: 0.5)" in " ".join(
        text.split())
    assert "--variety {a,b}" in text and "--kind" not in text
    assert "--count" not in text  # derived fields are not options
    with pytest.raises(SystemExit):
        parse(ToyConfig, ["--variety", "c"])


def test_every_field_of_every_section_has_help():
    for section in (EncoderConfig, LSTMDecoderConfig, LossConfig, SearchConfig, TrainConfig,
                    RAMConfig):
        fields = dataclasses.fields(section)
        assert fields and all(field.metadata.get("help") for field in fields), section


def test_values_are_checked_with_what_was_received():
    with pytest.raises(ConfigError, match="score must be one of additive, .*local. "
                                          "Received: score='dott'"):
        LSTMDecoderConfig(score="dott")
    with pytest.raises(ConfigError, match="size must be int. Received: size='3'"):
        ToyConfig(size="3")
    with pytest.raises(ConfigError, match="Unknown keys in decoder config: colour"):
        ModelConfig.from_dict({"decoder": {"colour": 1}})
    with pytest.raises(ConfigError, match="heads must divide"):
        LSTMDecoderConfig(heads=3)


def test_backbone_defaults_follow_the_backbone():
    assert (EncoderConfig().image_size, EncoderConfig().weights) == (96, "none")
    assert (EncoderConfig(backbone="resnet50").image_size,
            EncoderConfig(backbone="resnet50").weights) == (224, "imagenet")
    assert EncoderConfig(backbone="inception_v3").image_size == 299
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


def test_a_pretrained_backbone_is_kept_fixed_unless_fine_tuned():
    """A CNN without pretrained weights must learn; a pretrained one is frozen (its grids
    cached) unless --fine-tune says otherwise: fine-tuning ResNet50 on a CPU is ~10x
    slower."""
    assert EncoderConfig().fine_tune is True
    assert EncoderConfig(backbone="resnet50").fine_tune is False
    assert EncoderConfig(backbone="resnet50", weights="weights/resnet50.h5").fine_tune is False
    assert EncoderConfig(backbone="resnet50", weights="none").fine_tune is True
    assert EncoderConfig(backbone="resnet50", fine_tune=True).fine_tune is True
    assert EncoderConfig(fine_tune=False).fine_tune is False
    from captioner.cli import config_from_args
    from captioner.commands.train import build_parser
    for flags, expected in (([], False), (["--fine-tune"], True), (["--freeze"], False),
                            (["--no-fine-tune"], False)):
        args = build_parser().parse_args(["--coco", "d", "--backbone", "resnet50", *flags])
        assert config_from_args(EncoderConfig, args).fine_tune is expected, flags


def test_old_model_configs_load_with_their_loss_weights_in_the_loss_section():
    """Model folders from before LossConfig kept the loss weights in the decoder's dict."""
    old = {"decoder": {"attention": "hard", "lstm_units": 64, "doubly_stochastic": 0.5,
                       "attention_supervision": 1.0, "reward_weight": 0.2, "credit": "caption"},
           "vocab_size": 10}
    config = ModelConfig.from_dict(old)
    assert (config.decoder.attention, config.decoder.lstm_units) == ("hard", 64)
    assert config.loss == LossConfig(doubly_stochastic=0.5, attention_supervision=1.0,
                                     reward_weight=0.2, credit="caption")
    assert config.decoder.kind == "lstm" and "doubly_stochastic" not in config.to_dict()["decoder"]
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="both the decoder and the loss"):
        ModelConfig.from_dict({**old, "loss": {"doubly_stochastic": 0.7}})
    with pytest.raises(ConfigError, match="Unknown decoder kind"):
        ModelConfig.from_dict({"decoder": {"kind": "gru"}})


def test_lstm_configs_from_before_positions_keep_the_per_cell_vectors_they_were_built_with():
    assert ModelConfig().decoder.positions == "axes"
    assert ModelConfig.from_dict({"decoder": {"lstm_units": 64}}).decoder.positions == "cells"
    config = ModelConfig.from_dict({"decoder": {"positions": "axes"}})
    assert ModelConfig.from_dict(config.to_dict()).decoder.positions == "axes"


def test_the_bundled_model_folder_loads_its_loss_weights_from_its_old_config():
    import json
    import os

    from tests.conftest import ROOT
    folder = os.path.join(ROOT, "assets", "model")
    with open(os.path.join(folder, "config.json")) as handle:
        written = json.load(handle)["model"]
    config = ModelConfig.from_dict(written)
    for name in ("doubly_stochastic", "attention_supervision"):
        expected = written["loss"][name] if "loss" in written else written["decoder"][name]
        assert getattr(config.loss, name) == expected


def test_search_config_is_frozen_and_refuses_bad_values():
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        SearchConfig().beam = 2
    assert SearchConfig(beam=3) == SearchConfig(beam=3) and len({SearchConfig(beam=3),
                                                                 SearchConfig(beam=3)}) == 1
    assert SearchConfig(length_penalty=1).length_penalty == 1.0  # an int becomes a float
    assert (SearchConfig().name, SearchConfig(beam=5).name) == ("greedy", "beam5")
    with pytest.raises(ConfigError, match="n_best <= beam"):
        SearchConfig(beam=2, n_best=3)
