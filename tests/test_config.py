"""Configuration: the one path from a dataclass field to a command-line option."""

import dataclasses
from typing import Literal, Optional

import pytest

from captioner.cli import ArgumentParser, add_config_options, config_from_args
from captioner.config import (Config, DecoderConfig, EncoderConfig, ModelConfig, RamConfig,
                              TrainConfig, derived, field_comments)
from captioner.errors import ConfigError


@dataclasses.dataclass
class ToyConfig(Config):
    size: int = 3               # how big it is
    rate: float = 0.5           # how fast; said on two lines
                                # so the help joins them
    kind: Literal["a", "b"] = "a"  # which one
    # a section header, not anybody's help
    switch: bool = False        # turn it on
    limit: Optional[int] = None  # no limit by default
    count: int = derived(0)     # set by the data


def parse(config_class, argv):
    parser = ArgumentParser(prog="test")
    add_config_options(parser, config_class, "toy")
    return parser, parser.parse_args(argv)


def test_a_field_is_an_option_with_its_type_choices_and_comment():
    parser, args = parse(ToyConfig, ["--size", "7", "--kind", "b", "--switch", "--rate", "2"])
    config = config_from_args(ToyConfig, args, count=5)
    assert config == ToyConfig(size=7, rate=2.0, kind="b", switch=True, limit=None, count=5)
    assert config_from_args(ToyConfig, parse(ToyConfig, [])[1]) == ToyConfig()  # defaults kept
    assert config_from_args(ToyConfig, parse(ToyConfig, ["--no-switch"])[1]).switch is False
    text = parser.format_help()
    assert "how fast; said on two lines so the help joins them (default: 0.5)" in " ".join(
        text.split())
    assert "--kind {a,b}" in text and "section header" not in text
    assert "--count" not in text  # derived fields are not options
    with pytest.raises(SystemExit):
        parse(ToyConfig, ["--kind", "c"])


def test_every_field_of_every_section_has_help():
    for section in (EncoderConfig, DecoderConfig, TrainConfig, RamConfig):
        comments = field_comments(section)
        options = [f.name for f in dataclasses.fields(section) if f.metadata.get("option", True)]
        assert options and all(comments.get(name) for name in options), section


def test_values_are_checked_with_what_was_received():
    with pytest.raises(ConfigError, match="score must be one of additive, .*local. "
                                          "Received: score='dott'"):
        DecoderConfig(score="dott")
    with pytest.raises(ConfigError, match="size must be int. Received: size='3'"):
        ToyConfig(size="3")
    with pytest.raises(ConfigError, match="Unknown keys in decoder config: colour"):
        ModelConfig.from_dict({"decoder": {"colour": 1}})
    with pytest.raises(ConfigError, match="heads must divide"):
        DecoderConfig(heads=3)


def test_backbone_defaults_follow_the_backbone():
    assert (EncoderConfig().image_size, EncoderConfig().weights) == (96, "none")
    assert (EncoderConfig(backbone="resnet50").image_size,
            EncoderConfig(backbone="resnet50").weights) == (224, "imagenet")
    assert EncoderConfig(backbone="inception_v3").image_size == 299
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()
