"""Write the out-of-domain summary (``domain.json``) of a captioner trained before it existed.

    captioner domain --model DIR --coco DATA [--split train] [--held-out val]

``captioner train`` writes it at the end of training; see ``captioner.domain`` for what it holds.
"""

import os
import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run

PROG = "captioner domain"


def build_parser(prog=PROG):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="the captioner's model folder (domain.json is written into it)")
    parser.add_argument("--coco", required=True, metavar="DIR",
                        help="the COCO-layout data it was trained on")
    parser.add_argument("--split", default="train", metavar="NAME",
                        help="the training split (default: train)")
    parser.add_argument("--held-out", default="val", metavar="NAME",
                        help="the split that sets the threshold with it (default: val)")
    return parser


def main(argv=None, prog=PROG):
    args = build_parser(prog).parse_args(argv)
    from captioner.io import check_output_folder
    check_output_folder(args.model, "--model")
    import_keras_quietly()
    from captioner.data.coco import load_coco_split
    from captioner.domain import FILE, summarise
    from captioner.errors import DataError, ModelError
    from captioner.tasks import load
    task = load(args.model)
    if task.kind != "captioner":
        raise ModelError(f"{args.model} holds a {task.kind}; domains are for captioners")
    records, _ = load_coco_split(args.coco, args.split, instances=False)
    held_out, _ = load_coco_split(args.coco, args.held_out, instances=False)
    domain = summarise(task.model, [r.path for r in records], [r.path for r in held_out],
                       progress=True)
    if domain is None:
        raise DataError(f"{args.coco} has fewer than 3 readable {args.split} images")
    domain.save(args.model)
    print(f"wrote {os.path.join(args.model, FILE)}: {domain.images} images, "
          f"threshold {domain.threshold:.2f}", file=sys.stderr)


def entry(prog=PROG):
    """The ``captioner domain`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))


if __name__ == "__main__":
    entry()
