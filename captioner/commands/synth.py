"""Write the synthetic COCO-style data set (``captioner.data.synthetic``), exactly from a seed.

    python -m captioner.commands.synth --out data/synthetic --seed 0
    python -m captioner.commands.synth --out data/hard --seed 1 --style hard
    python -m captioner.commands.synth --out data/photo-sized --size 640 480 --format jpg
"""

import sys

from captioner.cli import ArgumentParser, run
from captioner.data.synthetic import IMAGE_SIZE, SPLITS, STYLES, generate


def main(argv=None):
    parser = ArgumentParser(prog="python -m captioner.commands.synth",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the data set into")
    parser.add_argument("--seed", type=int, default=0, help="the data set's seed (default: 0)")
    for split, count in SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=count,
                            help=f"images in the {split} split ({count})")
    parser.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"),
                        default=(IMAGE_SIZE, IMAGE_SIZE), help=f"image size ({IMAGE_SIZE} "
                        f"{IMAGE_SIZE}; the scenes are drawn at {IMAGE_SIZE} px and resized)")
    parser.add_argument("--format", choices=("png", "jpg"), default="png",
                        help="image file format (default: png)")
    parser.add_argument("--style", choices=STYLES, default="simple",
                        help="simple (the original scenes) or hard (more shapes, colours and "
                        "sizes, occlusion, clutter, textured backgrounds, relations)")
    args = parser.parse_args(argv)
    counts = generate(args.out, args.seed, {s: getattr(args, s) for s in SPLITS},
                      size=args.size, image_format=args.format, style=args.style)
    print(f"wrote {sum(counts.values())} images to {args.out}: {counts}")


def entry():
    sys.exit(run(main))


if __name__ == "__main__":
    entry()
