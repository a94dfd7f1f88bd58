"""What ``captioner train`` and ``captioner train-ram`` share: the training and output
options, parsing (``--help-all``), and ``--resume DIR`` from the checkpoint's record."""

import argparse
import os
import shlex
import sys

from captioner.cli import add_config_options, given_options, option_flag
from captioner.errors import ConfigError

RUN_FOLDER = """OUT is the best epoch's model folder (`captioner caption --model OUT`), with
metrics.json, training_curves.png and checkpoint/ (what --resume continues from)."""
# what a resume may be given beside its TrainConfig.RESUMABLE sections
FEATURE_OPTIONS = {"feature_cache": "feature_dir", "feature_cache_dtype": "feature_dtype",
                   "no_feature_cache": "feature_cache"}
DATA_OPTIONS = ("coco", "karpathy", "images", "image_folder")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The epilog's examples as written; the options' help wrapped as usual."""


def add_training_options(parser, sections=None):
    """The options of TrainConfig and of its ``sections`` (names; by default all), a
    group each."""
    from captioner.config import TrainConfig
    add_config_options(parser, TrainConfig)
    for name, section in TrainConfig.sections().items():
        if sections is None or name in sections:
            add_config_options(parser, section)


def add_output_options(parser):
    """--out, --resume, --no-progress; returns their group."""
    output = parser.group("output")
    output.add_argument("--out", metavar="DIR", help="the run folder to write (required)")
    output.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                        help="continue the run in DIR (or --out) from its last checkpoint, "
                             "with its own options (run length, input, distribution and "
                             "moved data may change)")
    output.add_argument("--overwrite", action="store_true",
                        help="OUT may hold other files; only a run's are replaced")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    output.add_argument("--help-all", action="store_true",
                        help="show this help with the advanced options too, and exit")
    return output


def parse(argv, prog, build, check=None):
    """The arguments of ``argv`` by the parser ``build(prog, every)`` makes (``every``:
    ``--help-all`` was asked for); ``check(parser, args)`` checks a new run's."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = build(prog, every="--help-all" in argv)
    args = parser.parse_args(["--help" if a == "--help-all" else a for a in argv])
    if isinstance(args.resume, str):
        check_resumable(parser, args)
        return args
    if not args.out:
        parser.error("--out DIR is required (or --resume DIR, to continue a run)")
    if check is not None:
        check(parser, args)
    return args


def resumable_options():
    """The dests a ``--resume DIR`` may be given: TrainConfig.RESUMABLE's fields, the
    feature cache's options, where the data are now, and what this process prints."""
    import dataclasses

    from captioner.config import TrainConfig
    names = {"no_progress", "resume", "out", *FEATURE_OPTIONS, *DATA_OPTIONS}
    for name in TrainConfig.RESUMABLE:
        names.update(field.name for field in dataclasses.fields(TrainConfig.sections()[name]))
    return names


def check_resumable(parser, args):
    """``--resume DIR``: refuses --out elsewhere and every option a resume may not change,
    naming them."""
    out = args.resume
    if args.out and os.path.abspath(args.out) != os.path.abspath(out):
        parser.error(f"--resume {out} continues the run in {out}; drop --out {args.out}")
    defaults = vars(parser.parse_args([]))
    changed = sorted(flag_of(dest) for dest, value in vars(args).items()
                     if dest not in resumable_options() and value != defaults.get(dest))
    if changed:
        raise ConfigError(
            f"--resume {out} keeps the run's own {', '.join(changed)}: drop "
            f"{'it' if len(changed) == 1 else 'them'} (a resume may change only the run "
            "length, input and distribution options and where moved data are), or train "
            "anew into another --out")


def flag_of(dest):
    """The command-line flag of the option that stores into ``dest``."""
    import dataclasses

    from captioner.config import DECODERS, EncoderConfig, LossConfig, RAMConfig
    for section in (EncoderConfig, LossConfig, RAMConfig, *DECODERS.values()):
        if dest in {field.name for field in dataclasses.fields(section)}:
            return option_flag(section, dest)
    return "--" + dest.replace("_", "-")


def train_options(args):
    """{field: value} of the training options given, of every TrainConfig section."""
    from captioner.config import TrainConfig
    given = given_options(TrainConfig, args)
    for section in TrainConfig.sections().values():
        given.update(given_options(section, args))
    return given


def command_line(name, argv):
    """The command that started a run (``captioner NAME ARGV``), for its model card."""
    return " ".join(shlex.quote(a) for a in ["captioner", name, *argv])


def run_training(args, argv, callbacks, start, name, commands=None):
    """What both commands do with their parsed ``args``: check OUT, then resume the run
    (``resume``'s ``commands``) or ``start(args, callbacks, command)`` one; says where
    the model is."""
    from captioner.cli import import_keras_quietly
    from captioner.folders import claim
    from captioner.text import printable
    from captioner.training.checkpoint import CHECKPOINT_DIR, Checkpoints
    if isinstance(args.resume, str):  # one line, not a traceback, before any work
        args.resume = claim(args.resume, "run", "--resume")
    elif args.resume:  # --out OUT --resume, with the run's options given again
        args.out = claim(args.out, "run", "--out")
    else:
        args.out = claim(args.out, "run", "--out", overwrite=args.overwrite)
        if Checkpoints(os.path.join(args.out, CHECKPOINT_DIR)).exists():
            raise ConfigError(f"{printable(args.out)} already holds a training run: add "
                              "--resume to continue it, or choose another --out")
    import_keras_quietly()
    if isinstance(args.resume, str):
        out = resume(args, callbacks, commands)
    else:
        out = start(args, callbacks, command_line(
            name, [item for item in argv if item != "--no-progress"]))
    print(f"model written to {printable(os.path.abspath(out))}", file=sys.stderr)
    return 0


def resume(args, callbacks, commands=None):
    """``--resume DIR``: the run continued from its checkpoint's record. ``commands``:
    {"caption" or "ram": (build_parser, start)} of the commands that resume runs from
    before the record (their command line is parsed again: ``captioner.commands.legacy``)."""
    from captioner.training.record import read_record, read_state
    from captioner.training.run import resume as resume_run
    features = {FEATURE_OPTIONS[dest]: getattr(args, dest, None) for dest in FEATURE_OPTIONS
                if getattr(args, dest, None) not in (None, False, "float32")}
    if "feature_cache" in features:
        features["feature_cache"] = False  # --no-feature-cache
    data = {name: getattr(args, name, None) for name in (*DATA_OPTIONS, "image_folder")}
    common = dict(progress=not args.no_progress, callbacks=callbacks, data=data)
    out = args.resume
    if read_record(out) is None:  # checkpoints from before the record: their command line
        from captioner.commands import legacy
        if commands is None:
            raise ConfigError(f"--resume {out}: the run is older than `captioner train-ram`; "
                              f"`captioner train --resume {out}` continues it")
        old, start = legacy.resumed_args(read_state(out), out, args, resumable_options(),
                                         commands)
        return start(old, callbacks, old.command)
    return resume_run(out, **train_options(args), **features, **common)
