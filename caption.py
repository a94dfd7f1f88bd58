#!/usr/bin/env python3
"""Caption images and show where the model looked: ``captioner caption``.

    python caption.py IMAGE_OR_FOLDER... [--model DIR] [--beam K] [--n-best N] [--json]
                      [--attention-dir DIR] [--html DIR]
    python caption.py --coco DIR --split val [--model DIR] [--out DIR]   # captioner evaluate

The front end lives in ``captioner.commands.caption``.
"""

from captioner.commands.caption import entry, main, parse_args  # noqa: F401

if __name__ == "__main__":
    entry(prog="caption.py")
