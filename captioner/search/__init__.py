"""Decoding: the searches that turn a decoder step into captions, each one graph of
``keras.ops`` that compiles whole and exports (keras-hub's ``samplers/`` shape).

    Sampler                the base: owns the while_loop and the hypotheses
    GreedySampler          the most likely word at every step
    RandomSampler          each word drawn from the model (Gumbel noise from the caller)
    SamplingSampler        N captions per image drawn with temperature, top-k, top-p, a seed
    BeamSampler            beam search, K hypotheses per image, all images at once; diverse
                           beam search with groups
    Controls               what every search may not or should not write: banned words,
                           minimum length, n-gram blocking, a repetition penalty
    CompiledSearch         a captioner's encoder + decoder set-up + a sampler, one model
    sampler_for(config)    the sampler of a ``captioner.config.SearchConfig``

A new search is one file: a ``Sampler`` subclass that chooses the next tokens, and its
test against a NumPy reference (``tests/reference_search.py``).
"""

from captioner.search.beam import BeamSampler, BeamState
from captioner.search.compiled import CompiledSearch, SelfCriticalSearch, feature_statistics
from captioner.search.controls import Controls
from captioner.search.greedy import GreedySampler, GreedyState
from captioner.search.random import RandomSampler
from captioner.search.sampler import Sampler, hypothesis, normalised_score, reorder, tile
from captioner.search.sampling import SamplingSampler

__all__ = ["Sampler", "GreedySampler", "GreedyState", "RandomSampler", "SamplingSampler",
           "BeamSampler", "Controls", "banned_ids",
           "BeamState", "CompiledSearch", "SelfCriticalSearch", "feature_statistics",
           "hypothesis", "normalised_score", "reorder", "tile", "sampler_for"]


def banned_ids(config, vocabulary):
    """The word ids a ``SearchConfig`` never lets a caption write: <pad>, <start>, <unk>
    unless ``allow_unknown``, and ``ban``'s words (ConfigError for one the vocabulary does
    not have)."""
    from captioner.errors import ConfigError
    missing = [word for word in config.ban if word not in vocabulary.index]
    if missing:
        raise ConfigError(f"--ban: {', '.join(map(repr, missing))} not in the model's "
                          f"vocabulary of {len(vocabulary):,} words")
    ids = [vocabulary.pad_id, vocabulary.start_id] + [vocabulary.index[w] for w in config.ban]
    return ids if config.allow_unknown else ids + [vocabulary.unk_id]


def sampler_for(config, vocabulary=None):
    """The sampler of a ``SearchConfig``: sampling, greedy for one caption of beam 1, else
    (diverse) beam search; under its controls (with a ``vocabulary``, its banned words)."""
    controls = Controls(banned_ids(config, vocabulary) if vocabulary is not None else (),
                        config.min_length, config.no_repeat_ngram, config.repetition_penalty)
    if config.sampling:
        return SamplingSampler(config.samples, config.temperature, config.top_k, config.top_p,
                               config.length_penalty, controls)
    if config.beam == 1 and config.n_best == 1:
        return GreedySampler(controls)
    return BeamSampler(config.beam, config.n_best, config.length_penalty, config.min_length,
                       config.beam_groups, config.diversity, controls)
