"""Captioning in one compiled call: encoder, decoder set-up and greedy search as one
Keras model, which ``predict_on_batch`` compiles (``tf.function`` on TensorFlow,
``jax.jit`` on JAX) once per input shape.

    CompiledGreedy(captioner, start_id, end_id, max_length)
        {"images": uint8 (batch, S, S, 3)} or {"features": (batch, L, D)}
        -> ``captioner.search.greedy_graph``'s arrays

``compiled_greedy(model, vocabulary, max_length)`` keeps one per model and settings, so a
process compiles each shape once.
"""

import weakref

import keras
from keras import ops

from captioner.search import greedy_graph

_CACHE = weakref.WeakKeyDictionary()  # captioner -> {(start, end, max_length): CompiledGreedy}


class CompiledGreedy(keras.Model):
    """See the module docstring. It holds no weights of its own: the captioner's."""

    def __init__(self, captioner, start_id, end_id, max_length, **kwargs):
        super().__init__(**kwargs)
        self.captioner = captioner
        self.start_id, self.end_id, self.max_length = start_id, end_id, max_length
        self.built = True  # its weights are the built captioner's

    def call(self, inputs):
        if "features" in inputs:
            features = ops.convert_to_tensor(inputs["features"])
        else:
            features = self.captioner.encode(inputs["images"])
        decoder = self.captioner.decoder
        memory = decoder.prepare(features)
        return greedy_graph(decoder.step, decoder.initial_state(memory), memory,
                            ops.shape(features)[0], self.start_id, self.end_id,
                            self.max_length)


def compiled_greedy(model, vocabulary, max_length):
    """The :class:`CompiledGreedy` of a captioner for these settings (made once)."""
    key = (vocabulary.start_id, vocabulary.end_id, int(max_length))
    searches = _CACHE.setdefault(model, {})
    if key not in searches:
        searches[key] = CompiledGreedy(model, *key)
    return searches[key]
