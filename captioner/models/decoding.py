"""Captioning in one compiled call: encoder, decoder set-up and the search (greedy or
beam) as one Keras model, which ``predict_on_batch`` compiles with XLA (``tf.function``
with ``jit_compile`` on TensorFlow, ``jax.jit`` on JAX) once per input shape.

    CompiledSearch(captioner, start_id, end_id, max_length, beam_size=1, n_best=1,
                   length_penalty=0.0, min_length=0)
        {"images": uint8 (batch, S, S, 3)} or {"features": (batch, L, D)}
        -> ``captioner.search.greedy_graph``'s arrays (beam_size 1, n_best 1), else
           ``beam_graph``'s; ``hypotheses(outputs)`` -> the search's hypotheses

``compiled_search(model, vocabulary, max_length, ...)`` keeps one per model and settings,
so a process compiles each shape once.
"""

import weakref

import keras
import numpy as np
from keras import ops

from captioner.search import beam_graph, beam_hypotheses, greedy_graph, greedy_hypotheses

_CACHE = weakref.WeakKeyDictionary()  # captioner -> {settings: CompiledSearch}


class CompiledSearch(keras.Model):
    """See the module docstring. It holds no weights of its own: the captioner's."""

    def __init__(self, captioner, start_id, end_id, max_length, beam_size=1, n_best=1,
                 length_penalty=0.0, min_length=0, statistics=False, **kwargs):
        super().__init__(**kwargs)
        self.statistics = statistics  # also "feature_mean", "feature_std" (batch, D)
        self.captioner = captioner
        self.start_id, self.end_id, self.max_length = start_id, end_id, max_length
        self.beam_size, self.n_best = beam_size, n_best
        self.length_penalty, self.min_length = length_penalty, min_length
        self.greedy = beam_size == 1 and n_best == 1
        self.built = True  # its weights are the built captioner's
        # XLA on every backend: Keras leaves it off for TensorFlow on a CPU, where the
        # loop's small ops then run one by one (beam 5 at batch 32: 9.7 ms a caption
        # without, 2.7 ms with, for ~0.6 s more compiling; benchmarks/decode_speed.py)
        self.jit_compile = True

    def features(self, inputs):
        """The annotation vectors (batch, L, D) of the inputs: given, or encoded."""
        if "features" in inputs:
            return ops.convert_to_tensor(inputs["features"])
        return self.captioner.encode(inputs["images"])

    def start(self, features):
        """(decoder, its initial state, memory, batch size) of the annotation vectors."""
        decoder = self.captioner.decoder
        memory = decoder.prepare(features)
        return decoder, decoder.initial_state(memory), memory, ops.shape(features)[0]

    def call(self, inputs):
        features = self.features(inputs)
        decoder, state, memory, batch = self.start(features)
        if self.greedy:
            outputs = greedy_graph(decoder.step, state, memory, batch, self.start_id,
                                   self.end_id, self.max_length)
        else:
            outputs = beam_graph(decoder.step, state, memory, batch, self.start_id,
                                 self.end_id, self.max_length, self.beam_size, self.n_best,
                                 self.length_penalty, self.min_length)
        if self.statistics:  # of what was decoded, for the out-of-domain check
            features = ops.cast(features, "float32")
            mean = ops.mean(features, axis=1)  # (batch, D)
            spread = ops.sqrt(ops.mean(ops.square(features - mean[:, None]), axis=1))
            outputs = {**outputs, "feature_mean": mean, "feature_std": spread}
        return outputs

    def hypotheses(self, outputs):
        """This search's outputs (as ``predict_on_batch`` returns them) -> per image the
        list of hypotheses, best first, as the eager search gives them."""
        outputs = {key: np.asarray(value) for key, value in outputs.items()
                   if not key.startswith("feature_")}
        if self.greedy:
            return greedy_hypotheses(outputs)
        return beam_hypotheses(outputs, self.n_best, self.length_penalty)


def compiled_search(model, vocabulary, max_length, beam_size=1, n_best=1, length_penalty=0.0,
                    min_length=0, statistics=False):
    """The :class:`CompiledSearch` of a captioner for these settings (made once)."""
    key = (vocabulary.start_id, vocabulary.end_id, int(max_length), int(beam_size),
           int(n_best), float(length_penalty), int(min_length), bool(statistics))
    searches = _CACHE.setdefault(model, {})
    if key not in searches:
        searches[key] = CompiledSearch(model, *key)
    return searches[key]


class SelfCriticalSearch(CompiledSearch):
    """What a step of self-critical training decodes, in one compiled call: each image's
    greedy caption (the baseline) and ``samples`` captions drawn from the model.

    {"images" or "features" (batch, ...), "noise": Gumbel noise (batch * samples,
    max_length + 1, V)} -> {"greedy_" + key, "sampled_" + key: ``greedy_graph``'s arrays}
    (the samples image-major: image i's are rows i * samples ... (i + 1) * samples - 1).
    """

    def __init__(self, captioner, start_id, end_id, max_length, samples, **kwargs):
        super().__init__(captioner, start_id, end_id, max_length, **kwargs)
        self.samples = samples

    def call(self, inputs):
        decoder, state, memory, batch = self.start(self.features(inputs))
        options = dict(start_id=self.start_id, end_id=self.end_id, max_length=self.max_length)
        greedy = greedy_graph(decoder.step, state, memory, batch, **options)
        tile = lambda nest: keras.tree.map_structure(  # noqa: E731
            lambda x: ops.repeat(x, self.samples, axis=0), nest)
        sampled = greedy_graph(decoder.step, tile(state), tile(memory), batch * self.samples,
                               noise=ops.convert_to_tensor(inputs["noise"]), **options)
        return {**{f"greedy_{k}": v for k, v in greedy.items()},
                **{f"sampled_{k}": v for k, v in sampled.items()}}
