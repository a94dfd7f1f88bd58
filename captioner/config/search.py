"""How captions are searched for: ``SearchConfig``."""

import dataclasses
from typing import Optional

from captioner.config.base import Config, check_positive, check_range, option
from captioner.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SearchConfig(Config):
    """How captions are searched for (``captioner.search``): greedy search, beam search,
    diverse beam search (``beam_groups`` > 1) or sampling (any of ``samples`` > 1,
    ``temperature``, ``top_k``, ``top_p``), each under the controls (``ban``,
    ``no_repeat_ngram``, ``repetition_penalty``, ``min_length``). Frozen: a captioner
    keeps one compiled search per config (``ImageCaptioner.search``)."""
    title = "search"
    beam: int = option(1, "beam size K; 1 is greedy search (one caption per image)",
                       metavar="K")
    n_best: int = option(1, "captions per image, best first (at most --beam)", metavar="N")
    length_penalty: float = option(
        0.0,
        "beam search ranks by log-probability / length ** ALPHA (0: the total, which "
        "favours short captions; 1: the mean per word)", metavar="ALPHA")
    min_length: int = option(0, "<end> is not allowed before this many words")
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
    beam_groups: int = option(
        1, "diverse beam search: the beams in G groups, each a beam search whose words lose "
        "--diversity x how often the groups before chose them at that step "
        "(Vijayakumar et al. 2016); G divides --beam", metavar="G")
    diversity: float = option(0.5, "diverse beam search's Hamming penalty lambda",
                              metavar="LAMBDA")
    samples: int = option(1, "sampling: captions drawn per image, listed best first",
                          metavar="N")
    temperature: float = option(
        1.0, "sampling: the distribution's temperature (below 1: surer, above 1: more varied)",
        metavar="T")
    top_k: int = option(0, "sampling: draw from the K most likely words only (0: all)",
                        metavar="K")
    top_p: float = option(
        1.0, "sampling: draw from the smallest set of most likely words whose probability "
        "reaches P (nucleus sampling; 1: all)", metavar="P")
    seed: int = option(0, "sampling: the same seed gives the same captions, on either "
                          "backend and in any batch", metavar="S")
    no_repeat_ngram: int = option(
        0, "no caption repeats an N-gram: a word that would is not allowed (3 blocks "
        "repeated trigrams; 0: off)")
    repetition_penalty: float = option(
        1.0, "a word a caption already has keeps p ** THETA of its probability (1: off)",
        metavar="THETA")
    ban: tuple = option((), "words never written (<pad> and <start> never are)",
                        metavar="WORD")
    allow_unknown: bool = option(False, "let captions contain <unk>, the word for words the "
                                        "vocabulary does not have (banned by default)")

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
        check_positive(self, "beam_groups", "samples")
        check_range(self, 0.0, 100.0, "diversity")
        check_range(self, 1, 100, "samples")
        check_range(self, 1e-3, 100.0, "temperature")
        check_range(self, 0, 100_000, "top_k")
        check_range(self, 0, 2 ** 32 - 1, "seed")
        check_range(self, 0, 10, "no_repeat_ngram")
        check_range(self, 0.1, 10.0, "repetition_penalty")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1]. Received: top_p={self.top_p}")
        if self.beam % self.beam_groups:
            raise ConfigError(f"--beam-groups must divide --beam. Received: beam={self.beam}, "
                              f"beam_groups={self.beam_groups}")
        if self.sampling and (self.beam > 1 or self.n_best > 1):
            raise ConfigError("sampling (--samples, --temperature, --top-k, --top-p) and beam "
                              "search (--beam, --n-best) do not mix: sampling gives --samples "
                              "captions per image")
        if any(not word or any(c.isspace() for c in word) for word in self.ban):
            raise ConfigError(f"--ban takes words. Received: {list(self.ban)}")

    @property
    def sampling(self):
        """Whether captions are drawn rather than searched for."""
        return (self.samples > 1 or self.temperature != 1.0 or self.top_k > 0
                or self.top_p < 1.0)

    @property
    def captions(self):
        """How many captions an image gets."""
        return self.samples if self.sampling else self.n_best

    @property
    def name(self):
        """"greedy", "beamK", "diverse-beamK" or "sampleN", for file names and reports."""
        if self.sampling:
            return f"sample{self.samples}"
        if self.beam_groups > 1:
            return f"diverse-beam{self.beam}"
        return "greedy" if self.beam == 1 else f"beam{self.beam}"
