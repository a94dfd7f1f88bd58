"""What the command-line front ends share: quiet start-up and one-line errors.

Exit status: 0 done; 1 done in part (``caption.py``: some inputs could not be read, each
said on its own line); 2 a user mistake (a :class:`CaptionerError`, or an option argparse
rejects: one line ``error: ...`` on standard error) or nothing usable; 3 a bug (its
traceback is printed); 130 interrupted.
"""

import argparse
import dataclasses
import os
import sys

from captioner.text import printable


def safe_terminal():
    """Standard output and error write what their encoding cannot hold (a file name's
    undecodable bytes, anything under a strict ASCII locale) as backslash escapes rather
    than failing."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def quiet_backend_logs():
    """Silences TensorFlow's C++ start-up chatter; call before keras is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def import_keras_quietly():
    """Imports keras with file descriptor 2 closed off: TensorFlow's C++ start-up lines
    (absl, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL and would bury the program's own
    messages. Python-level errors still surface, as exceptions."""
    from captioner.io import silenced_stderr
    quiet_backend_logs()
    with silenced_stderr():
        import keras  # noqa: F401


def run(main, argv=None):
    """Calls ``main(argv)``; turns the project's errors into one line and exit code 2, and
    any other exception into its traceback and exit code 3."""
    from captioner.errors import CaptionerError
    safe_terminal()
    try:
        code = main(argv)
    except CaptionerError as error:
        print(f"error: {printable(error, keep=chr(10))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: the traceback is for the report, the status tells scripts
        import traceback
        traceback.print_exc()
        return 3
    return code or 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line too: ``error: ... (see --help)``, exit 2;
    and its argument groups are found by title (``group``), in the order first asked for.
    ``every``: advanced options are listed in the help too (``--help-all``)."""

    def __init__(self, *args, every=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.groups, self.every = {}, every

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def group(self, title):
        """The argument group titled ``title``, made on first use (so that options of
        several config sections can share one group)."""
        if title not in self.groups:
            self.groups[title] = self.add_argument_group(title)
        return self.groups[title]


def add_source_options(group):
    """--coco DIR, or --karpathy FILE with --images DIR: where a data set's captions and
    images are (``captioner.data.coco.CaptionSource``)."""
    group.add_argument("--coco", metavar="DIR",
                       help="a COCO folder: annotations/captions_{split}2017.json "
                            "(instances_*.json: boxes, optional), images in {split}2017/")
    group.add_argument("--karpathy", metavar="FILE",
                       help="a Karpathy split file (dataset_coco.json, dataset_flickr8k.json, "
                            "dataset_flickr30k.json)")
    group.add_argument("--images", metavar="DIR",
                       help="with --karpathy: the folder its file names are relative to")


def add_config_options(parser, config_class, title=None):
    """Adds one option per field of ``config_class`` (a ``captioner.config`` section) to
    ``parser``, in the group titled ``title`` (by default the section's ``title``):
    ``--field-name``, typed by the field, with its choices, and its ``help`` metadata
    (``captioner.config.option``). Fields marked ``derived`` are left out, ``advanced``
    ones listed only where ``parser.every``; a bool field is a ``--name/--no-name``
    switch. Every option defaults to None, "not given", so that ``config_from_args`` keeps
    the dataclass's own default. Returns the group."""
    group = parser.group(title or config_class.title)
    for field in dataclasses.fields(config_class):
        if is_option(field):
            add_field_option(group, config_class, field, field_help(field), parser.every)
    return group


def field_help(field):
    """A config field's help text, with its default."""
    default = field.default if field.default is not dataclasses.MISSING else None
    if default is False:  # a switch: off unless given
        default = None
    text = field.metadata.get("help", "")
    return f"{text} (default: {default})" if default is not None else text


def add_field_option(group, config_class, field, help_text, every=True, choices=None):
    """The option of one config field, in ``group`` (its help hidden for an advanced
    field unless ``every``; ``choices``: other than the field's)."""
    from captioner.config import field_choices, field_type
    if field.metadata.get("advanced") and not every:
        help_text = argparse.SUPPRESS
    else:
        help_text = help_text.replace("%", "%%")
    flag, kind = option_flag(config_class, field.name), field_type(field)
    if kind is bool:
        group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                           default=None, help=help_text)
        return
    if kind is tuple:  # words
        group.add_argument(flag, dest=field.name, nargs="+", default=None, help=help_text,
                           metavar=field.metadata.get("metavar", "VALUE"))
        return
    choices = choices or field_choices(field)
    metavar = None if choices else field.metadata.get(
        "metavar", {int: "N", float: "X"}.get(kind, field.name.upper()))
    group.add_argument(flag, dest=field.name, type=kind, default=None, choices=choices,
                       help=help_text, metavar=metavar)


def add_decoder_options(parser):
    """The options of every decoder kind's section (``captioner.config.DECODERS``) in
    their group: ``--decoder KIND`` and each kind's fields; a field that several kinds
    have (``--heads``, ``--dropout``) is one option whose help gives each kind's default.
    ``decoder_from_args`` makes the chosen kind's section of them."""
    from captioner.config import DECODERS
    seen = {}
    for kind, section in DECODERS.items():
        for field in dataclasses.fields(section):
            if is_option(field):
                seen.setdefault(field.name, []).append((kind, section, field))
    for name, owners in seen.items():
        kind, section, field = owners[0]
        if name == "kind":
            text = "; ".join(f.metadata["help"] for _, _, f in owners) + \
                f" (default: {field.default})"
        elif len(owners) > 1:
            text = "; ".join(f"{k}: {f.metadata['help']} (default: {f.default})"
                             for k, _, f in owners)
        else:
            text = f"{kind}: {field_help(field)}"
        add_field_option(parser.group(section.title), section, field, text, parser.every,
                         choices=list(DECODERS) if name == "kind" else None)


def decoder_from_args(args):
    """The decoder section of the ``--decoder`` kind (lstm by default) from the options
    ``add_decoder_options`` added; an option of another kind is a ConfigError."""

    from captioner.config import DECODERS
    from captioner.errors import ConfigError
    kind = getattr(args, "kind", None) or "lstm"
    section = DECODERS[kind]
    own = {field.name for field in dataclasses.fields(section)}
    given = {}
    for other in DECODERS.values():
        given.update(given_options(other, args))
    foreign = sorted(option_flag(other, name) for other in DECODERS.values()
                     for name in given_options(other, args) if name not in own)
    if foreign:
        raise ConfigError(f"{', '.join(sorted(set(foreign)))} not an option of --decoder "
                          f"{kind}")
    return section(**{**given, "kind": kind})


def is_option(field):
    """Whether a config field is a command-line option: not ``derived``, not a section
    (a section's own fields are options of their own group)."""
    from captioner.config import Config
    section = isinstance(field.type, type) and issubclass(field.type, Config)
    return field.metadata.get("option", True) and not section


def option_flag(config_class, name):
    """The command-line flag of a field of ``config_class``: ``--field-name``, or the
    field's own ``flag``."""
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return field.metadata.get("flag") or "--" + name.replace("_", "-")


def given_options(config_class, args):
    """{field name: value} of the options ``add_config_options`` added for
    ``config_class`` that the command line gave."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)
            if is_option(field) and getattr(args, field.name, None) is not None}


def config_from_args(config_class, args, **values):
    """A ``config_class`` from the options ``add_config_options`` added (those given) and
    ``values``; a bad value is a ConfigError, one line for the user."""
    return config_class(**{**given_options(config_class, args), **values})
