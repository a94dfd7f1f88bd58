"""Write the synthetic COCO-style data set (``captioner.data.synthetic``), exactly from a seed.

    captioner synth --out data/synthetic --seed 0
    captioner synth --out data/hard --seed 1 --style hard
    captioner synth --out data/photo-sized --size 640 480 --format jpg
"""

import os
import sys

from captioner.cli import ArgumentParser, run

PROG = "captioner synth"


def build_parser(prog=PROG):
    from captioner.data.synthetic import IMAGE_SIZE, SPLITS, STYLES
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write the data set into")
    parser.add_argument("--seed", type=int, default=0, help="the data set's seed (default: 0)")
    for split, count in SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=count, metavar="N",
                            help=f"images in the {split} split ({count})")
    parser.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"),
                        default=(IMAGE_SIZE, IMAGE_SIZE), help=f"image size ({IMAGE_SIZE} "
                        f"{IMAGE_SIZE}; the scenes are drawn at {IMAGE_SIZE} px and resized)")
    parser.add_argument("--format", choices=("png", "jpg"), default="png",
                        help="image file format (default: png)")
    parser.add_argument("--style", choices=STYLES, default="simple",
                        help="simple (the original scenes) or hard (more shapes, colours and "
                        "sizes, occlusion, clutter, textured backgrounds; captions that state "
                        "positions, relations and counts)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder that holds other files too, replacing only "
                             "the files a data set of this command has there")
    return parser


def main(argv=None, prog=PROG):
    args = build_parser(prog).parse_args(argv)
    from captioner.data.synthetic import SPLITS, generate
    from captioner.folders import claim, mark
    from captioner.text import printable
    out = claim(args.out, "data", "--out", overwrite=args.overwrite)
    os.makedirs(out, exist_ok=True)
    mark(out, "data")
    counts = generate(out, args.seed, {s: getattr(args, s) for s in SPLITS},
                      size=args.size, image_format=args.format, style=args.style)
    print(f"wrote {sum(counts.values())} images to {printable(args.out)}: {counts}")


def entry(prog=PROG):
    """The ``captioner synth`` command."""
    sys.exit(run(lambda argv: main(argv, prog=prog)))


if __name__ == "__main__":
    entry()
