"""How captions are searched for: ``SearchConfig``."""

import dataclasses
from typing import Optional

from captioner.config.base import Config, check_positive, check_range, option
from captioner.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SearchConfig(Config):
    """How captions are searched for (``captioner.search``): greedy, or beam search.
    Frozen: a captioner keeps one compiled search per config
    (``ImageCaptioner.search``)."""
    title = "search"
    beam: int = option(1, "beam size K; 1 is greedy search (one caption per image)",
                       metavar="K")
    n_best: int = option(1, "captions per image, best first (at most --beam)", metavar="N")
    length_penalty: float = option(
        0.0,
        "beam search ranks by log-probability / length ** ALPHA (0: the total, which "
        "favours short captions; 1: the mean per word)", metavar="ALPHA")
    min_length: int = option(0, "beam search: <end> is not allowed before this many words")
    max_length: Optional[int] = option(
        None,
        "most words per caption (default: the model's)")
    grounded: Optional[float] = option(
        None,
        "grounded decoding: the words that make a claim lose W x how far the claim is from "
        "where the model looked: an object word by the grounding head's reading there "
        "(log-probabilities), a position word by the place's third of the image, a "
        "relation word by the offset between the two places, a number word by the objects "
        "the head counts (0: off); by default 1 for a model with a grounding head, else 0",
        metavar="W")

    def check(self):
        check_positive(self, "beam")
        check_range(self, -10.0, 10.0, "length_penalty")  # beyond, lengths' powers overflow
        if self.grounded is not None:
            check_range(self, 0.0, 100.0, "grounded")
        if not 1 <= self.n_best <= self.beam:
            raise ConfigError(f"need 1 <= n_best <= beam (--n-best, --beam). Received: "
                              f"beam={self.beam}, n_best={self.n_best}")
        if self.min_length < 0:
            raise ConfigError(f"min_length must be >= 0. Received: {self.min_length}")
        if self.max_length is not None:
            check_positive(self, "max_length")

    @property
    def name(self):
        """"greedy" or "beamK", for file names and reports."""
        return "greedy" if self.beam == 1 else f"beam{self.beam}"
