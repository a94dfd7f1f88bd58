"""Train an attention captioner on COCO-style data, or continue a run.

    captioner train --coco DIR --out DIR [--backbone NAME] [--epochs N] [--batch-size N]
    captioner train --karpathy FILE --images DIR --out DIR ...
    captioner train --resume DIR [--epochs N]          # continue a run, its options kept
    captioner train --coco DIR --init MODEL_DIR --scst --out DIR   # self-critical fine-tuning

The options are the fields of ``captioner.config``'s sections, a help group each;
``--help-all`` lists the advanced ones too. ``captioner train-ram`` trains a Recurrent
Attention Model (``captioner train --task ram`` still does).
"""

import argparse
import sys

from captioner.cli import (
    ArgumentParser,
    add_config_options,
    add_decoder_options,
    add_source_options,
    config_from_args,
    decoder_from_args,
    given_options,
    option_flag,
    run,
)
from captioner.commands import train_ram
from captioner.commands.training import (
    RUN_FOLDER,
    HelpFormatter,
    add_output_options,
    add_training_options,
    parse,
    run_training,
    train_options,
)

PROG = "captioner train"
EXAMPLES = RUN_FOLDER + """

examples:
  captioner synth --out data/synth && captioner train --coco data/synth --out runs/a
  captioner train --coco ~/coco --backbone resnet50 --freeze --out runs/coco"""


def build_parser(prog=PROG, every=False):
    from captioner.config import EncoderConfig, LossConfig
    parser = ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], every=every,
        usage="%(prog)s (--coco DIR | --karpathy FILE --images DIR) --out DIR [options]\n"
              "       %(prog)s --resume DIR [--epochs N]",
        epilog=EXAMPLES, formatter_class=HelpFormatter)
    data = parser.group("data")
    add_source_options(data)
    data.add_argument("--train-split", default="train", metavar="NAME",
                      help="the split trained on (default: train)")
    data.add_argument("--val-split", default="val", metavar="NAME",
                      help="scored each epoch to pick the best (default: val)")
    data.add_argument("--test-split", default="test", metavar="NAME",
                      help="scored with the best model at the end (default: test)")
    add_feature_options(parser.group("input (a resume may change it)"))
    add_config_options(parser, EncoderConfig)
    parser.group(EncoderConfig.title).add_argument(
        "--freeze", dest="fine_tune", action="store_const", const=False,
        help=argparse.SUPPRESS)  # --no-fine-tune, as its help says
    add_decoder_options(parser)
    add_config_options(parser, LossConfig)
    add_training_options(parser)
    output = add_output_options(parser)
    output.add_argument("--init", metavar="DIR",
                        help="start from this model folder (its weights, vocabulary and "
                             "model options; the loss options may be given anew); --scst "
                             "needs it")
    parser.add_argument("--task", choices=("caption",), default="caption",
                        help=argparse.SUPPRESS)  # `--task ram`: train-ram
    return parser


def add_feature_options(group):
    group.add_argument("--feature-cache", metavar="DIR", default=None,
                       help="where a frozen encoder's feature grids are stored (default: "
                            "~/.cache/captioner/features)")
    group.add_argument("--feature-cache-dtype", choices=("float16", "float32"),
                       default="float16",
                       help="float16 (the default) takes half float32's disk")
    group.add_argument("--no-feature-cache", action="store_true",
                       help="run a frozen encoder on every batch instead")


def check_caption_args(parser, args):
    from captioner.config import DECODERS, EncoderConfig
    if bool(args.coco) == bool(args.karpathy):
        parser.error("give exactly one of --coco DIR or --karpathy FILE")
    if args.karpathy and not args.images:
        parser.error("--karpathy needs --images DIR")
    if args.init:  # its model fixes the architecture; the loss section may be set anew
        fixed = {option_flag(config, name) for config in (EncoderConfig, *DECODERS.values())
                 for name in given_options(config, args)}
        if fixed:
            parser.error(f"the model of --init fixes {', '.join(sorted(fixed))}; drop them")


def parse_args(argv=None, prog=PROG):
    """The arguments of the command line ``argv`` (checked)."""
    return parse(argv, prog, build_parser, check_caption_args)


def main(argv=None, callbacks=(), prog=PROG):
    """Runs the command line ``argv``; ``callbacks``: Keras callbacks added to every
    epoch's ``fit()`` (for programs that drive this command)."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if "ram" in argv and argv[argv.index("ram") - 1:argv.index("ram")] == ["--task"]:
        at = argv.index("ram")  # `captioner train --task ram`: captioner train-ram
        return train_ram.main(argv[:at - 1] + argv[at + 1:], callbacks, prog=prog)
    return run_training(parse_args(argv, prog), argv, callbacks, start, "train",
                        {"caption": (build_parser, start),
                         "ram": (train_ram.build_parser, train_ram.start)})


def start(args, callbacks, command):
    """A new run (or one resumed with all its options: ``--out DIR --resume``)."""
    from captioner.config import EncoderConfig, LossConfig, ModelConfig
    from captioner.training.run import train, train_config_for
    model_config = ModelConfig(encoder=config_from_args(EncoderConfig, args),
                               decoder=decoder_from_args(args),
                               loss=config_from_args(LossConfig, args))
    return train(args.out, coco=args.coco, karpathy=args.karpathy, images=args.images,
                 model_config=model_config,
                 train_config=train_config_for("caption", **train_options(args)),
                 splits=(args.train_split, args.val_split, args.test_split),
                 feature_cache=not args.no_feature_cache, feature_dir=args.feature_cache,
                 feature_dtype=args.feature_cache_dtype, init=args.init,
                 overrides=given_options(LossConfig, args), resume=bool(args.resume),
                 progress=not args.no_progress, command=command, callbacks=callbacks)


def entry(prog=PROG):
    """The ``captioner train`` command (and ``train``, ``train.py``)."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))
