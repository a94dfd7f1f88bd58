"""Export a captioner as a TensorFlow SavedModel or an ONNX model that serves without this code.

    python -m captioner.commands.export --model DIR --out DIR [--format saved_model|onnx]
        [--grounded W]

Runs with the TensorFlow backend; ``captioner.export`` says what the folder holds.
"""

import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run

FORMATS = ("saved_model", "onnx")  # captioner.export.FORMATS, without importing it


def main(argv=None):
    parser = ArgumentParser(prog="python -m captioner.commands.export",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the captioner's model folder")
    parser.add_argument("--out", required=True, help="the export folder to write")
    parser.add_argument("--format", choices=FORMATS, default="saved_model",
                        help="saved_model (TensorFlow Serving; the default) or onnx "
                             "(onnxruntime)")
    parser.add_argument("--grounded", type=float, default=None, metavar="W",
                        help="export grounded decoding at weight W (a model with a grounding "
                             "head; see caption.py --grounded; 0: plain); by default as "
                             "caption.py searches")
    args = parser.parse_args(argv)
    import_keras_quietly()
    from captioner.export import export
    export(args.model, args.out, args.format, args.grounded)
    print(f"wrote {args.out}", file=sys.stderr)


def entry():
    sys.exit(run(main))


if __name__ == "__main__":
    entry()
