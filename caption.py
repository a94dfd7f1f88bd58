#!/usr/bin/env python3
"""Caption images with a trained captioner and show where it looked, or score a split.

    python caption.py IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--n-best N] [--json]
                      [--attention-dir DIR]
    python caption.py --coco DIR --split test [--model DIR] [--beam K] [--out DIR]
    python caption.py IMAGE_OR_FOLDER... --model RAM_DIR [--json] [--attention-dir DIR]
                      # a Recurrent Attention Model classifies, and draws its glimpse path

The front end lives in ``captioner.commands.caption`` (also the ``caption`` command of
``pip install .``).
"""

from captioner.commands.caption import entry, main, parse_args  # noqa: F401

if __name__ == "__main__":
    entry()
