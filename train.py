#!/usr/bin/env python3
"""Train a Show, Attend and Tell captioner on COCO-style data, or a Recurrent Attention Model.

    python train.py --coco DIR --out DIR [--backbone NAME] [--epochs N] [--batch-size N]
                    [--seed N] [--resume]
    python train.py --karpathy FILE --images DIR --out DIR ...
    python train.py --task ram --digits translated|cluttered --out DIR [--glimpses N]
    python train.py --task ram --image-folder DIR --out DIR ...   # one sub-folder per class

The front end lives in ``captioner.commands.train`` (also the ``train`` command of
``pip install .``); ``python train.py --help`` lists every option.
"""

from captioner.commands.train import entry, main, parse_args  # noqa: F401

if __name__ == "__main__":
    entry()
