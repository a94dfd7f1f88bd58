"""The vocabulary, stored as JSON (captions are split into words by
``captioner.text.tokenize``).

The vocabulary is built from training captions only. Ids 0..3 are reserved:
``<pad>`` (0, masked out of the loss), ``<start>``, ``<end>`` and ``<unk>`` (words seen
fewer than ``min_count`` times). The rest follow by descending count, then alphabetically,
so the same captions always give the same ids.
"""

import collections
import hashlib

from captioner import io
from captioner.errors import DataError
from captioner.text import tokenize

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIAL_TOKENS = (PAD, START, END, UNK)

class Vocabulary:
    """A bijection between words and integer ids, with the four special tokens first."""

    def __init__(self, words):
        words = list(words)
        if tuple(words[:4]) != SPECIAL_TOKENS:
            raise DataError(f"A vocabulary must start with {', '.join(SPECIAL_TOKENS)}. "
                            f"Received: {words[:4]}")
        if len(set(words)) != len(words):
            raise DataError("A vocabulary must not repeat words.")
        self.words = words
        self.index = {word: i for i, word in enumerate(words)}
        self.pad_id, self.start_id, self.end_id, self.unk_id = range(4)

    @classmethod
    def build(cls, captions, min_count=1):
        """Builds a vocabulary from an iterable of caption strings."""
        counts = collections.Counter(word for caption in captions for word in tokenize(caption))
        kept = sorted((word for word, count in counts.items() if count >= min_count),
                      key=lambda word: (-counts[word], word))
        return cls(SPECIAL_TOKENS + tuple(kept))

    def __len__(self):
        return len(self.words)

    @property
    def hash(self):
        """A short digest of the word list; models record it to catch a wrong vocab.json."""
        return hashlib.sha256("\n".join(self.words).encode("utf-8")).hexdigest()[:16]

    def encode(self, caption):
        """Caption string -> ids of its words (unknown words -> ``<unk>``), no start/end."""
        return [self.index.get(word, self.unk_id) for word in tokenize(caption)]

    def decode(self, ids):
        """Ids -> words, stopping at ``<end>`` and skipping ``<pad>`` and ``<start>``."""
        words = []
        for token in ids:
            token = int(token)
            if token == self.end_id:
                break
            if token not in (self.pad_id, self.start_id):
                words.append(self.words[token])
        return words

    def to_json(self):
        return {"format": "captioner-vocabulary/1", "words": self.words, "hash": self.hash}

    def save(self, path):
        io.write_json(path, self.to_json())

    @classmethod
    def load(cls, path):
        data = io.read_json(path, "vocabulary file")
        if not isinstance(data, dict) or not isinstance(data.get("words"), list):
            raise DataError(f"Not a captioner vocabulary (no 'words' list): {path}")
        vocabulary = cls(data["words"])
        if data.get("hash") not in (None, vocabulary.hash):
            raise DataError(f"Vocabulary file is corrupt (its hash does not match): {path}")
        return vocabulary
