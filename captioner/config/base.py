"""What every configuration section shares: fields that are command-line options, dict
round trips, and the checks of types, choices and ranges.

Each field is made by ``option(default, help)``: the help gives the reason for the default
and is also the help of the field's command-line option (``captioner.cli``), so a new
option is one field plus its use. A field's type says what the option takes:
``Literal[...]`` gives its choices, ``bool`` a ``--name/--no-name`` switch. ``advanced``
options are listed by ``--help-all`` only. Fields that the data or the model set
(``derived``) are not options. Unknown keys are an error, never ignored, so a typo in a
config file cannot silently fall back to a default. Each section's ``title`` names its
group of options in ``--help``.
"""

import dataclasses
import typing
from typing import Literal

from captioner.errors import ConfigError


def option(default, help, flag=None, metavar=None, advanced=False):
    """A field that is a command-line option (``captioner.cli.add_config_options``):
    ``help`` is its help text (the reason for its default), ``flag`` its name where it is
    not ``--field-name``, ``metavar`` what --help calls its value (the field's name);
    ``advanced``: listed by ``--help-all``, not ``--help``."""
    metadata = {"help": help}
    if flag:
        metadata["flag"] = flag
    if metavar:
        metadata["metavar"] = metavar
    if advanced:
        metadata["advanced"] = True
    return dataclasses.field(default=default, metadata=metadata)


def derived(default, help=""):
    """A field set from the data or the model, not by a command-line option."""
    return dataclasses.field(default=default, metadata={"option": False, "help": help})


def field_choices(field):
    """The values a field may take, or None: a ``Literal``'s."""
    if typing.get_origin(field.type) is Literal:
        return typing.get_args(field.type)
    return None


def field_type(field):
    """The Python type of a field's values: int, float, str, bool, or tuple (of str)."""
    kind = field.type
    if typing.get_origin(kind) is Literal:
        return type(typing.get_args(kind)[0])
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


class Config:
    """What every configuration section shares: dict round trips and validation of the
    fields' types and choices. Subclasses are dataclasses and add range checks in
    ``check``. ``title``: the title of the section's options in ``--help``. ``MOST``:
    {field: the largest value it may take}, the stated bounds of the sizes that make
    weights, checked before any weight is made (a config file asking for terabytes is
    one line)."""

    title = ""
    MOST = {}

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), field_type(field)
            if isinstance(kind, type) and issubclass(kind, Config):
                continue
            if value is None and typing.get_origin(field.type) is typing.Union:
                continue
            if kind is tuple:
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str)
                                                                   for v in value):
                    raise ConfigError(f"{field.name} must be a list of strings. "
                                      f"Received: {field.name}={value!r}")
                object.__setattr__(self, field.name, tuple(value))
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
            most = self.MOST.get(field.name)
            if most is not None and isinstance(value, (int, float)) and value > most:
                raise ConfigError(f"{field.name} must be at most {most:,}. "
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


def check_positive(config, *names):
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer. Received: {name}={value!r}")


def check_range(config, low, high, *names):
    for name in names:
        value = getattr(config, name)
        if not low <= value <= high:
            raise ConfigError(f"{name} must be in [{low}, {high}]. Received: {name}={value}")

