"""The ``captioner`` command: one subcommand per job.

    captioner caption IMAGE_OR_FOLDER... [--attention-dir DIR] [--html DIR]
    captioner train --coco DIR --out DIR ...        captioner train --resume DIR
    captioner train-ram --digits translated --out DIR
    captioner evaluate --coco DIR --split val ...
    captioner export --model DIR --out DIR [--format saved_model|onnx|litert]
    captioner serve [--model DIR] [--port 8000] [--workers N]
    captioner synth --out DIR [--style hard]
    captioner domain --model DIR --coco DIR
    captioner env [--json] [--need JOB ...]

Each subcommand's module is imported only when it runs, and none imports Keras to parse
its options, so ``--help`` is immediate.
"""

import importlib
import sys

from captioner.cli import ArgumentParser, run

# name -> (module, what it does): the order of ``captioner --help``
COMMANDS = {
    "caption": ("captioner.commands.caption",
                "caption images and show where the model looked for every word"),
    "train": ("captioner.commands.train",
              "train a captioner on COCO-style data, or resume a run"),
    "train-ram": ("captioner.commands.train_ram",
                  "train a Recurrent Attention Model, a classifier that looks in glimpses"),
    "evaluate": ("captioner.commands.evaluate",
                 "caption a COCO or Karpathy split and score it"),
    "export": ("captioner.commands.export",
               "export a captioner as a SavedModel or ONNX model that serves without this "
               "code"),
    "serve": ("captioner.commands.serve",
              "serve a captioner over HTTP: a JSON API, metrics and a page to try it"),
    "synth": ("captioner.commands.synth", "write the synthetic COCO-style data set"),
    "domain": ("captioner.commands.domain",
               "write a model's out-of-domain summary (domain.json)"),
    "env": ("captioner.commands.env",
            "what this machine gives captioner: versions, backend, devices, optional parts"),
}


def version():
    from captioner.version import __version__
    return __version__


def build_parser():
    import argparse
    width = max(map(len, COMMANDS)) + 2
    listing = "\n".join(f"  {name:<{width}}{about}" for name, (_, about) in COMMANDS.items())
    parser = ArgumentParser(
        prog="captioner", usage="captioner [--version] [--help] COMMAND [OPTIONS]",
        description="Image captioning with visual attention: caption images and see where\n"
                    "the model looked for every word; train, evaluate and export captioners.",
        epilog=f"commands:\n{listing}\n\n`captioner COMMAND --help` lists a command's "
               "options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"captioner {version()}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                        help=argparse.SUPPRESS)
    parser.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(item) for item in argv]
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    return module.main(args.options, prog=f"captioner {args.command}")


def entry():
    """The ``captioner`` console command."""
    sys.exit(run(main))
