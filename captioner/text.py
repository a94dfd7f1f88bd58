"""Tokenisation of captions: the one rule that the vocabulary, the data and the metrics share;
and text as a terminal may show it (``printable``).

Lower-case the caption, then keep the runs of letters and digits (an apostrophe inside a
word is kept: "don't"); everything else, punctuation included, separates words and is
dropped. ``"A Red-Circle, left."`` -> ``["a", "red", "circle", "left"]``.
"""

import os
import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(caption):
    """Splits a caption into lower-case words (see the module docstring)."""
    return _WORD.findall(caption.lower())


def printable(text, keep=""):
    """``text`` (a path, a name, a message) as a terminal may show it: characters that are
    not printable (terminal controls, undecodable bytes of a file name kept as
    surrogates) escaped as ``\\x1b``, ``\\xff``, so that a file name can neither move the
    cursor nor end a line. ``keep``: characters left as they are ("\\n" in a message)."""
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escaped(c) for c in text)


def _escaped(character):
    if "\udc80" <= character <= "\udcff":  # an undecodable byte, as os.fsdecode keeps it
        return f"\\x{ord(character) - 0xdc00:02x}"
    return character.encode("unicode_escape").decode("ascii")
