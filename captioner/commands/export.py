"""Export a captioner as a TensorFlow SavedModel or an ONNX model that serves without this code.

    captioner export --model DIR --out DIR [--format saved_model|onnx|litert] [search options]

Runs with the TensorFlow backend; ``captioner.export`` says what the folder holds.
"""

import sys
import warnings

from captioner.cli import (
    ArgumentParser,
    add_config_options,
    config_from_args,
    import_keras_quietly,
    run,
)
from captioner.config import SearchConfig
from captioner.errors import ConfigError

FORMATS = ("saved_model", "onnx", "litert")  # captioner.export.FORMATS, not imported


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
                        help="saved_model (TensorFlow Serving; the default), onnx "
                             "(onnxruntime) or litert (phones: the LiteRT interpreter)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder that holds other files too, replacing only "
                             "the files an export has there")
    add_config_options(parser, SearchConfig, "search (as captioner caption's: the export "
                                              "gives the captions caption gives)")
    return parser


def main(argv=None, prog=PROG):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        args.search = config_from_args(SearchConfig, args)
    except ConfigError as error:
        parser.error(str(error))
    from captioner.folders import claim
    from captioner.text import printable
    out = claim(args.out, "export", "--out", overwrite=args.overwrite)
    import_keras_quietly()
    from captioner.tasks import ImageCaptioner, load
    task = load(args.models) if len(args.models) > 1 else ImageCaptioner.from_folder(
        args.models[0])
    from captioner.export import ExportWarning
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", ExportWarning)
        task.export(out, args.format, overwrite=args.overwrite, search=args.search)
    for warning in said:
        if issubclass(warning.category, ExportWarning):
            print(f"warning: {printable(str(warning.message))}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    print(f"wrote {printable(args.out)}", file=sys.stderr)


def entry(prog=PROG):
    """The ``captioner export`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))


if __name__ == "__main__":
    entry()
