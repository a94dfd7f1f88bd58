"""Tokenisation of captions: the one rule that the vocabulary, the data and the metrics share.

Lower-case the caption, then keep the runs of letters and digits (an apostrophe inside a
word is kept: "don't"); everything else, punctuation included, separates words and is
dropped. ``"A Red-Circle, left."`` -> ``["a", "red", "circle", "left"]``.
"""

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(caption):
    """Splits a caption into lower-case words (see the module docstring)."""
    return _WORD.findall(caption.lower())
