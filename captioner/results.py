"""What the task objects return: typed results whose fields are named as the command line's
JSON (``captioner caption --json``) names them, and ``to_json()`` that gives exactly that
JSON. A :class:`Caption` is made once, from the search's hypothesis, and is what the JSON,
the heat maps, the viewer, the report and the scores read."""

import dataclasses
from typing import Optional

import numpy as np


def _round(value, digits=4):
    return round(float(value), digits)


@dataclasses.dataclass
class Caption:
    """One caption of an image, and where the model looked for each of its words."""
    caption: str                 # the words, joined by spaces
    words: list                  # the words (no <start>/<end>)
    probabilities: list          # p(word | the words before, the image), per word
    log_probability: float       # of the whole caption (its <end> included when it has one)
    score: float                 # what the search ranked by (log_probability / length ** a)
    finished: bool               # whether it ended with <end> within the maximum length
    alphas: np.ndarray           # (n_words, H, W): each word's attention map over the grid
    cells: Optional[np.ndarray] = None  # hard attention: the flat grid cell each word read
    heads: Optional[np.ndarray] = None  # Transformer, on request: (n_words, layers, heads,
                                        # H, W), every layer's and head's cross-attention
    readings: Optional[np.ndarray] = None  # a grounding head's labels of each word's place
                                           # (n_words, groups), where the search gave them
    tokens: Optional[list] = None          # the words' ids in the vocabulary

    @classmethod
    def from_hypothesis(cls, hypothesis, words, grid_shape, one_cell=False):
        """A search hypothesis (``captioner.search.hypothesis``) -> a Caption.

        Args:
            words: the vocabulary's words, by id.
            grid_shape: (H, W) of the attention maps.
            one_cell: the model reads one grid cell per word (hard attention, argmax
                inference): ``cells`` says which.
        """
        said = [words[token] for token in hypothesis["tokens"]]
        alphas = np.reshape(hypothesis["alphas"], (len(said),) + tuple(grid_shape))
        cells = alphas.reshape(len(said), int(np.prod(grid_shape))).argmax(-1) \
            if one_cell else None
        return cls(" ".join(said), said,
                   [float(np.exp(value)) for value in hypothesis["log_probs"]],
                   hypothesis["log_prob"], hypothesis["score"], hypothesis["finished"], alphas,
                   cells, readings=hypothesis.get("readings"),
                   tokens=list(hypothesis["tokens"]))

    def to_json(self):
        return {"caption": self.caption,
                "words": [{"word": word, "probability": _round(probability)}
                          for word, probability in zip(self.words, self.probabilities)],
                "log_probability": _round(self.log_probability), "score": _round(self.score),
                "finished": self.finished}


@dataclasses.dataclass
class ImageCaptions:
    """An image's captions, best first, and whether it is like the model's training images."""
    path: Optional[str]          # the file, or None for an array given directly
    image: np.ndarray            # (height, width, 3) uint8 RGB, as read (EXIF applied)
    n_best: list                 # [Caption], best first
    out_of_domain: Optional[bool] = None     # None: the model has no domain summary
    domain_distance: Optional[float] = None  # ``captioner.domain``; > threshold: a stranger
    domain_threshold: Optional[float] = None  # the model's threshold of that distance

    @property
    def best(self):
        return self.n_best[0]

    @property
    def caption(self):
        return self.best.caption

    def to_json(self, n_best=None):
        """``caption.py --json``'s object for this image (``n_best``: list every caption;
        by default when there is more than one)."""
        result = {"path": self.path, **self.best.to_json()}
        if self.out_of_domain is not None:
            result.update(out_of_domain=self.out_of_domain,
                          domain_distance=_round(self.domain_distance, 3))
            if self.domain_threshold is not None:
                result["domain_threshold"] = _round(self.domain_threshold, 3)
        if n_best if n_best is not None else len(self.n_best) > 1:
            result["n_best"] = [caption.to_json() for caption in self.n_best]
        return result


@dataclasses.dataclass
class Classification:
    """A Recurrent Attention Model's answer for an image, and where its glimpses went."""
    path: Optional[str]
    image: np.ndarray            # (H, W, C) in [0, 1]: the image as the model saw it
    label: str                   # the most likely class
    probability: float           # its probability
    probabilities: np.ndarray    # (classes,)
    locations: np.ndarray        # (N, 2) glimpse centres in [-1, 1]
    glimpses: list               # [(row, column)] glimpse centres in pixels
    patches: np.ndarray          # (N, k, g, g, C) what each glimpse saw

    def to_json(self):
        return {"path": self.path, "label": self.label,
                "probability": _round(self.probability),
                "glimpses": [{"row": _round(row, 2), "column": _round(column, 2)}
                             for row, column in self.glimpses]}
