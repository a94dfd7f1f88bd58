"""Attention over a spatial feature grid: one interface, many score functions.

Every member maps a query ``(batch, query_dim)`` and keys/values laid out over a grid
``(batch, L, dim)`` (``L = H * W``, row-major) to a context ``(batch, value_dim)`` and the
weights ``alpha`` ``(batch, L)``, which sum to 1 over the unmasked cells and are exactly 0
on masked ones. Subclasses override only :meth:`GridAttention.prepare_keys` (work that
depends on the keys alone, done once per image rather than once per word) and
:meth:`GridAttention.score`.
"""

import keras
from keras import ops


def masked_softmax(scores, mask=None):
    """Softmax over the last axis; masked positions (mask == 0) get exactly 0.

    A large finite negative fills the masked scores (dtype-safe: float16's range is
    respected), and the result is multiplied by the mask so that a fully masked row gives
    zeros rather than a uniform distribution.
    """
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.cast(mask, "bool")
    fill = -3e4 if keras.backend.standardize_dtype(scores.dtype) == "float16" else -1e9
    weights = ops.softmax(ops.where(mask, scores, ops.cast(fill, scores.dtype)), axis=-1)
    return weights * ops.cast(mask, weights.dtype)


class GridAttention(keras.layers.Layer):
    """Base class of the grid attention layers.

    Args:
        units: width of the score's hidden projection (where the score has one).
        grid_shape: (H, W) of the grid, for members that need its geometry; optional.

    Call arguments:
        query: (batch, query_dim), e.g. the decoder's previous hidden state.
        keys: (batch, L, key_dim), the annotation vectors.
        values: (batch, L, value_dim); defaults to ``keys``.
        mask: optional (batch, L), 1 for cells that may be attended, 0 for padding.
        prepared_keys: optional result of ``prepare_keys(keys)``, to reuse across steps.

    Returns:
        ``(context, alpha)``: context (batch, value_dim) = sum_l alpha_l values_l, and
        alpha (batch, L).
    """

    def __init__(self, units=128, grid_shape=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer. Received: units={units!r}")
        self.units = units
        self.grid_shape = tuple(grid_shape) if grid_shape is not None else None
        self.supports_masking = True  # the mask is consumed here, not propagated

    def compute_mask(self, *args, **kwargs):
        return None

    def prepare_keys(self, keys):
        """Per-image work on the keys, reused by every query. Identity by default."""
        return keys

    def score(self, query, prepared_keys):
        """Unnormalised scores (batch, L). Subclasses implement this."""
        raise NotImplementedError

    def call(self, query, keys, values=None, mask=None, prepared_keys=None):
        if values is None:
            values = keys
        if prepared_keys is None:
            prepared_keys = self.prepare_keys(keys)
        alpha = masked_softmax(self.score(query, prepared_keys), mask)  # (batch, L)
        context = ops.einsum("bl,bld->bd", alpha, values)  # (batch, value_dim)
        return context, alpha

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units,
                      grid_shape=list(self.grid_shape) if self.grid_shape else None)
        return config


@keras.saving.register_keras_serializable(package="captioner")
class AdditiveAttention(GridAttention):
    """Bahdanau's additive attention, the f_att of Show, Attend and Tell (eq. 4-5).

    ``score(q, k_l) = v^T tanh(W q + U k_l + b)``, with W (query_dim, units),
    U (key_dim, units), b (units,) and v (units,). Unlike ``keras.layers.AdditiveAttention``
    it has the full form with the projections W and U. ``U k + b`` depends only on the
    image, so :meth:`prepare_keys` computes it once per caption.
    """

    def build(self, query_shape, keys_shape, values_shape=None):
        self.query_projection = keras.layers.Dense(self.units, use_bias=False, name="query_projection")
        self.key_projection = keras.layers.Dense(self.units, name="key_projection")
        self.energy = keras.layers.Dense(1, use_bias=False, name="energy")
        self.query_projection.build(query_shape)
        self.key_projection.build(keys_shape)
        self.energy.build(tuple(keys_shape[:-1]) + (self.units,))

    def prepare_keys(self, keys):
        return self.key_projection(keys)  # (batch, L, units)

    def score(self, query, prepared_keys):
        hidden = ops.tanh(prepared_keys + self.query_projection(query)[:, None, :])  # (batch, L, units)
        return ops.squeeze(self.energy(hidden), -1)  # (batch, L)


ATTENTION_LAYERS = {"additive": AdditiveAttention}


def get_attention(score, units, grid_shape=None, name="attention"):
    """The attention layer for a score name (see ``captioner.config.SCORES``)."""
    if score not in ATTENTION_LAYERS:
        raise ValueError(f"Unknown attention score. Received: score={score!r}; "
                         f"known: {', '.join(ATTENTION_LAYERS)}")
    return ATTENTION_LAYERS[score](units=units, grid_shape=grid_shape, name=name)
