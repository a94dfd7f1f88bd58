"""``Ensemble``: several captioners searched as one (self-critical.pytorch's test-time
ensemble): at each step the members' next-word distributions are averaged in probability
space, log(mean_m p_m(w)), and every search of ``captioner.search`` runs on that step.

Each member keeps its own encoder (backbone and image size) and decoder kind (LSTM with soft
or hard attention, Transformer); they share one vocabulary. The word's map is the mean of the
members' maps, each brought to the first member's grid (bilinear) and renormalised; each
member's own maps are ``ImageCaptioner.member_maps``.

It stands where the search expects a ``Captioner``: ``encode``, ``decoder`` (``prepare``,
``initial_state``, ``step``), ``model_config`` (the first member's, with the shortest
``max_length``), ``grid_shape``. It has no grounding head of its own: grounded decoding
re-scores each member that has one by its own head (``grounded_decoder``) before the
members are averaged.
"""

import copy

import keras
import numpy as np
from keras import ops


def _key(index):
    return f"member_{index}"


class EnsembleDecoder:
    """The members' decoders as one step (see the module docstring): ``decoders`` one per
    member (its decoder, or its ``GroundedDecoder``), ``grids`` their maps' (H_m, W_m),
    ``grid_shape`` the first member's."""

    def __init__(self, decoders, grids, grid_shape):
        self.decoders, self.grids = list(decoders), [tuple(grid) for grid in grids]
        self.grid_shape = tuple(grid_shape)

    def prepare(self, features):
        """features: one (batch, L_m, D_m) per member -> the members' memories, and
        "annotations" of the first member's grid (the search reads L from it)."""
        return {"annotations": features[0], **{
            _key(i): decoder.prepare(f)
            for i, (decoder, f) in enumerate(zip(self.decoders, features))}}

    def initial_state(self, memory, steps=None):
        # a dict: a loop's nest of lists of lists is not kept as such on every backend
        return {_key(i): decoder.initial_state(memory[_key(i)], steps=steps)
                for i, decoder in enumerate(self.decoders)}

    def step(self, tokens, state, memory):
        log_probs, states, alphas = [], {}, []
        for i, (decoder, grid) in enumerate(zip(self.decoders, self.grids)):
            logits, states[_key(i)], alpha = decoder.step(tokens, state[_key(i)],
                                                          memory[_key(i)])
            # each member's distribution (a grounded member's re-scored one) normalised
            log_probs.append(ops.log_softmax(ops.cast(logits, "float32"), axis=-1))
            alphas.append(self.on_grid(ops.cast(alpha, "float32"), grid))
        mean = ops.logsumexp(ops.stack(log_probs), axis=0) - np.log(len(self.decoders))
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
        self.decoder = EnsembleDecoder([m.decoder for m in members],
                                       [m.grid_shape for m in members], self.grid_shape)
        self.grounding = None  # no head of its own: its members' (``grounded_decoder``)
        self.built = True

    def grounded_decoder(self, weight, words):
        """The members' decoders as one step, each member with a grounding head decoding
        grounded by it at ``weight`` (``captioner.search.grounded``) with its own
        statement-word scorers (``words``: a list per member), before they are averaged."""
        from captioner.search.grounded import GroundedDecoder
        decoders = [GroundedDecoder(member.decoder, member.grounding, weight, own)
                    if member.grounding is not None else member.decoder
                    for member, own in zip(self.members, words)]
        return EnsembleDecoder(decoders, [m.grid_shape for m in self.members],
                               self.grid_shape)

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
