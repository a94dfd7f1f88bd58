#!/usr/bin/env python3
"""Train a captioner on COCO-style data, or a Recurrent Attention Model: ``captioner train``.

    python train.py --coco DIR --out DIR [--backbone NAME] [--epochs N] [--batch-size N]
    python train.py --karpathy FILE --images DIR --out DIR ...
    python train.py --resume DIR [--epochs N]

The front end lives in ``captioner.commands.train``; ``python train.py --help`` lists every
option.
"""

from captioner.commands.train import entry, main, parse_args  # noqa: F401

if __name__ == "__main__":
    entry(prog="train.py")
