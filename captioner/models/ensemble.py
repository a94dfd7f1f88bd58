"""``Ensemble``: several captioners searched as one (self-critical.pytorch's test-time
ensemble): at each step the members' next-word distributions are averaged in probability
space, log(mean_m p_m(w)), and every search of ``captioner.search`` runs on that step.

Each member keeps its own encoder (backbone and image size) and decoder kind (LSTM with soft
or hard attention, Transformer); they share one vocabulary. The word's map is the mean of the
members' maps, each brought to the first member's grid (bilinear) and renormalised; each
member's own maps are ``ImageCaptioner.member_maps``.

It stands where the search expects a ``Captioner``: ``encode``, ``decoder`` (``prepare``,
``initial_state``, ``step``), ``model_config`` (the first member's, with the shortest
``max_length``), ``grid_shape``; it has no grounding head.
"""

import copy

import keras
import numpy as np
from keras import ops


def _key(index):
    return f"member_{index}"


class EnsembleDecoder:
    """The members' decoders as one step (see the module docstring)."""

    def __init__(self, members, grid_shape):
        self.members, self.grid_shape = members, tuple(grid_shape)

    def prepare(self, features):
        """features: one (batch, L_m, D_m) per member -> the members' memories, and
        "annotations" of the first member's grid (the search reads L from it)."""
        return {"annotations": features[0], **{
            _key(i): member.decoder.prepare(f)
            for i, (member, f) in enumerate(zip(self.members, features))}}

    def initial_state(self, memory, steps=None):
        # a dict: a loop's nest of lists of lists is not kept as such on every backend
        return {_key(i): member.decoder.initial_state(memory[_key(i)], steps=steps)
                for i, member in enumerate(self.members)}

    def step(self, tokens, state, memory):
        log_probs, states, alphas = [], {}, []
        for i, member in enumerate(self.members):
            logits, states[_key(i)], alpha = member.decoder.step(tokens, state[_key(i)],
                                                                 memory[_key(i)])
            log_probs.append(ops.log_softmax(ops.cast(logits, "float32"), axis=-1))
            alphas.append(self.on_grid(ops.cast(alpha, "float32"), member.grid_shape))
        mean = ops.logsumexp(ops.stack(log_probs), axis=0) - np.log(len(self.members))
        return mean, states, ops.mean(ops.stack(alphas), axis=0)

    def on_grid(self, alpha, grid_shape):
        """A member's maps (N, H_m W_m) on the first member's grid (N, H W), summing to 1."""
        if tuple(grid_shape) == self.grid_shape:
            return alpha
        maps = ops.reshape(alpha, (-1, *grid_shape, 1))
        maps = ops.image.resize(maps, self.grid_shape, interpolation="bilinear")
        maps = ops.reshape(maps, (ops.shape(alpha)[0], -1))
        return maps / ops.maximum(ops.sum(maps, axis=-1, keepdims=True), 1e-12)


class Ensemble(keras.Model):
    """The members (``Captioner`` models, sharing a vocabulary) as one captioner for the
    searches; see the module docstring. It holds no weights of its own."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        if len(members) < 2:
            raise ValueError(f"An ensemble has at least two members. Received: {len(members)}")
        self.members = list(members)
        first = members[0]
        self.model_config = copy.deepcopy(first.model_config)
        self.model_config.max_length = min(m.model_config.max_length for m in members)
        self.grid_shape = first.grid_shape
        self.decoder = EnsembleDecoder(self.members, self.grid_shape)
        self.grounding = None
        self.built = True

    @property
    def image_size(self):
        return self.model_config.encoder.image_size

    def encode(self, images, training=False):
        """Images at the first member's size -> each member's annotation vectors, its
        images resized (bilinear) where its encoder takes another size."""
        features = []
        for member in self.members:
            size = member.model_config.encoder.image_size
            own = images
            if size != self.image_size:
                own = ops.image.resize(ops.cast(images, "float32"), (size, size),
                                       interpolation="bilinear", antialias=True)
                own = ops.cast(ops.clip(ops.round(own), 0, 255), "uint8")
            features.append(member.encode(own, training=training))
        return features
