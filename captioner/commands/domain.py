"""Write the out-of-domain summary (``domain.json``) of a captioner trained before it existed.

    python -m captioner.commands.domain --model DIR --coco DATA [--split train] [--held-out val]

``train.py`` writes it at the end of training; see ``captioner.domain`` for what it holds.
"""

import os
import sys

from captioner.cli import ArgumentParser, import_keras_quietly, run


def main(argv=None):
    parser = ArgumentParser(prog="python -m captioner.commands.domain",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the captioner's model folder")
    parser.add_argument("--coco", required=True, help="the COCO-layout data it was trained on")
    parser.add_argument("--split", default="train", help="the training split (default: train)")
    parser.add_argument("--held-out", default="val",
                        help="the split that sets the threshold with it (default: val)")
    args = parser.parse_args(argv)
    import_keras_quietly()
    from captioner.data.coco import load_coco_split
    from captioner.domain import summarise
    from captioner.errors import DataError, ModelError
    from captioner.saving import DOMAIN_FILE, load_model, write_domain
    saved = load_model(args.model)
    if saved.kind != "captioner":
        raise ModelError(f"{args.model} holds a {saved.kind}; domains are for captioners")
    records, _ = load_coco_split(args.coco, args.split, instances=False)
    held_out, _ = load_coco_split(args.coco, args.held_out, instances=False)
    domain = summarise(saved.model, [r.path for r in records], [r.path for r in held_out],
                       progress=True)
    if domain is None:
        raise DataError(f"{args.coco} has fewer than 3 readable {args.split} images")
    write_domain(args.model, domain)
    print(f"wrote {os.path.join(args.model, DOMAIN_FILE)}: {domain.images} images, "
          f"threshold {domain.threshold:.2f}", file=sys.stderr)


def entry():
    sys.exit(run(main))


if __name__ == "__main__":
    entry()
