"""Export a captioner as a TensorFlow SavedModel or an ONNX model that serves without this code.

    captioner export --model DIR --out DIR [--format saved_model|onnx] [--grounded W]

Runs with the TensorFlow backend; ``captioner.export`` says what the folder holds.
"""

import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run

FORMATS = ("saved_model", "onnx")  # captioner.export.FORMATS, without importing it


PROG = "captioner export"


def build_parser(prog=PROG):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, action="append", dest="models",
                        metavar="DIR",
                        help="the captioner's model folder; given more than once, the models' "
                             "ensemble (one vocabulary)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the export folder to write (new, empty or an earlier export, "
                             "whose own files are replaced when the new one is done)")
    parser.add_argument("--format", choices=FORMATS, default="saved_model",
                        help="saved_model (TensorFlow Serving; the default) or onnx "
                             "(onnxruntime)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder that holds other files too, replacing only "
                             "the files an export has there")
    parser.add_argument("--grounded", type=float, default=None, metavar="W",
                        help="export grounded decoding at weight W (a model with a grounding "
                             "head; see captioner caption --grounded; 0: plain); by default as "
                             "captioner caption searches")
    return parser


def main(argv=None, prog=PROG):
    args = build_parser(prog).parse_args(argv)
    from captioner.folders import claim
    from captioner.text import printable
    out = claim(args.out, "export", "--out", overwrite=args.overwrite)
    import_keras_quietly()
    from captioner.tasks import ImageCaptioner, load
    task = load(args.models) if len(args.models) > 1 else ImageCaptioner.from_folder(
        args.models[0])
    task.export(out, args.format, args.grounded, args.overwrite)
    print(f"wrote {printable(args.out)}", file=sys.stderr)


def entry(prog=PROG):
    """The ``captioner export`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))


if __name__ == "__main__":
    entry()
