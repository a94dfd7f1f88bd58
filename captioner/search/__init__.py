"""Decoding: the searches that turn a decoder step into captions, each one graph of
``keras.ops`` that compiles whole and exports (keras-hub's ``samplers/`` shape).

    Sampler                the base: owns the while_loop and the hypotheses
    GreedySampler          the most likely word at every step
    RandomSampler          each word drawn from the model (Gumbel noise from the caller)
    BeamSampler            beam search, K hypotheses per image, all images at once
    CompiledSearch         a captioner's encoder + decoder set-up + a sampler, one model
    sampler_for(config)    the sampler of a ``captioner.config.SearchConfig``

A new search is one file: a ``Sampler`` subclass that chooses the next tokens, and its
test against a NumPy reference (``tests/reference_search.py``).
"""

from captioner.search.beam import BeamSampler, BeamState
from captioner.search.compiled import CompiledSearch, SelfCriticalSearch, feature_statistics
from captioner.search.greedy import GreedySampler, GreedyState
from captioner.search.random import RandomSampler
from captioner.search.sampler import Sampler, hypothesis, normalised_score, reorder, tile

__all__ = ["Sampler", "GreedySampler", "GreedyState", "RandomSampler", "BeamSampler",
           "BeamState", "CompiledSearch", "SelfCriticalSearch", "feature_statistics",
           "hypothesis", "normalised_score", "reorder", "tile", "sampler_for"]


def sampler_for(config):
    """The sampler of a ``SearchConfig``: greedy for one caption of beam 1, else beam."""
    if config.beam == 1 and config.n_best == 1:
        return GreedySampler()
    return BeamSampler(config.beam, config.n_best, config.length_penalty, config.min_length)
