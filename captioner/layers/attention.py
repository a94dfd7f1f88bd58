"""Attention over a spatial feature grid: one interface, many score functions.

Every member maps a query ``(batch, query_dim)`` and keys/values laid out over a grid
``(batch, L, dim)`` (``L = H * W``, row-major) to a context ``(batch, value_dim)`` and the
weights ``alpha`` ``(batch, L)``, which sum to 1 over the unmasked cells and are exactly 0
on masked ones. Most members override only :meth:`GridAttention.prepare_keys` (work that
depends on the keys alone, done once per image rather than once per word) and
:meth:`GridAttention.score`.

=============  ===============================================  ==========================
name           score of cell l                                  paper
=============  ===============================================  ==========================
additive       v^T tanh(W q + U k_l + b)                        Bahdanau et al. 2015
dot            q^T k_l                                          Luong et al. 2015
general        q^T W k_l                                        Luong et al. 2015
concat         v^T tanh(W [q; k_l])                             Luong et al. 2015
scaled_dot     q^T k_l / sqrt(d)                                Vaswani et al. 2017
multihead      h heads of scaled_dot over projected q, k, v     Vaswani et al. 2017
local          general, times a 2-D Gaussian window around a    Luong et al. 2015 (local-p)
               predicted centre p = (H, W) * sigmoid(...)
=============  ===============================================  ==========================
"""

import keras
import numpy as np
from keras import ops


def masked_softmax(scores, mask=None):
    """Softmax over the last axis; masked positions (mask == 0) get exactly 0.

    A large finite negative fills the masked scores (dtype-safe: float16's range is
    respected), and the result is multiplied by the mask so that a fully masked row gives
    zeros rather than a uniform distribution.

    Computed in float32 whatever the scores' dtype (under a mixed-precision policy the
    scores are bfloat16 or float16): the weights are float32.
    """
    scores = ops.cast(scores, "float32")
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.cast(mask, "bool")
    weights = ops.softmax(ops.where(mask, scores, -1e9), axis=-1)
    return weights * ops.cast(mask, weights.dtype)


def weighted_sum(alpha, values):
    """sum_l alpha_l values_l: (batch, L) x (batch, L, D) -> (batch, D), summed in float32
    and returned in the values' dtype (the layer's compute dtype)."""
    return ops.cast(ops.einsum("bl,bld->bd", alpha, ops.cast(values, "float32")),
                    values.dtype)


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

    Hooks for subclasses: ``prepare_keys`` and ``score`` (most members override only
    these), ``attention_weights`` (scores -> alpha; a softmax by default, local attention
    adds its window), ``query_size`` (what query a user must give). ``config_options``
    names the constructor arguments beyond ``units`` and ``grid_shape`` that
    ``get_attention`` takes from a decoder's configuration, under the same names.
    """

    config_options = ()
    # How a decoder runs its teacher-forced recurrence with this layer (see
    # ``LSTMDecoder._scanned``): "scan" (one step's graph, looped: the least work
    # for a compiler that gains nothing from seeing all steps) or "unrolled" (every word
    # in one graph: XLA then recomputes a per-cell tensor such as the additive score's
    # (batch, L, units) energy in the backward pass, instead of storing it per word).
    # Chosen by measurement, ``benchmarks/train_speed.py``.
    recurrence = "scan"

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

    def attention_weights(self, scores, query, mask=None):
        """Scores (batch, L) -> alpha (batch, L): the masked softmax by default."""
        return masked_softmax(scores, mask)

    def query_size(self, key_size):
        """The size the query must have for keys of ``key_size``, or None if any will do
        (a caller with another size projects its query first)."""
        return None

    def call(self, query, keys, values=None, mask=None, prepared_keys=None):
        if values is None:
            values = keys
        if prepared_keys is None:
            prepared_keys = self.prepare_keys(keys)
        scores = self.score(query, prepared_keys)  # (batch, L)
        alpha = self.attention_weights(scores, query, mask)  # (batch, L)
        return weighted_sum(alpha, values), alpha  # (batch, value_dim), (batch, L)

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

    recurrence = "unrolled"  # the (batch, L, units) energy: see GridAttention

    def build(self, query_shape, keys_shape, values_shape=None):
        self.query_projection = keras.layers.Dense(self.units, use_bias=False,
                                                   name="query_projection")
        self.key_projection = keras.layers.Dense(self.units, name="key_projection")
        self.energy = keras.layers.Dense(1, use_bias=False, name="energy")
        self.query_projection.build(query_shape)
        self.key_projection.build(keys_shape)
        self.energy.build(tuple(keys_shape[:-1]) + (self.units,))

    def prepare_keys(self, keys):
        return self.key_projection(keys)  # (batch, L, units)

    def score(self, query, prepared_keys):
        # (batch, L, units)
        hidden = ops.tanh(prepared_keys + self.query_projection(query)[:, None, :])
        return ops.squeeze(self.energy(hidden), -1)  # (batch, L)


def _check_same_size(layer, query_shape, keys_shape):
    if query_shape[-1] != keys_shape[-1]:
        raise ValueError(f"{type(layer).__name__} compares the query with each key, so both "
                         f"need one size. Received: query size {query_shape[-1]}, key size "
                         f"{keys_shape[-1]}")


@keras.saving.register_keras_serializable(package="captioner")
class DotAttention(GridAttention):
    """Luong's dot score: ``score(q, k_l) = q^T k_l``. No weights; query and keys must have
    the same size (``units`` is unused)."""

    def build(self, query_shape, keys_shape, values_shape=None):
        _check_same_size(self, query_shape, keys_shape)

    def query_size(self, key_size):
        return key_size

    def score(self, query, prepared_keys):
        return ops.einsum("bd,bld->bl", query, prepared_keys)


@keras.saving.register_keras_serializable(package="captioner")
class ScaledDotAttention(DotAttention):
    """Scaled dot-product (Vaswani et al.): ``score(q, k_l) = q^T k_l / sqrt(d)``, d the key
    size, so that the scores' spread does not grow with d."""

    def score(self, query, prepared_keys):
        scale = 1.0 / np.sqrt(float(prepared_keys.shape[-1]))
        return super().score(query, prepared_keys) * scale


@keras.saving.register_keras_serializable(package="captioner")
class GeneralAttention(GridAttention):
    """Luong's general score: ``score(q, k_l) = q^T W k_l``, W (query_dim, key_dim).

    Computed as (q^T W) k_l: one (query_dim x key_dim) product per query instead of one per
    cell."""

    def build(self, query_shape, keys_shape, values_shape=None):
        self.kernel = self.add_weight(shape=(query_shape[-1], keys_shape[-1]),
                                      initializer="glorot_uniform", name="kernel")

    def score(self, query, prepared_keys):
        return ops.einsum("bk,blk->bl", ops.matmul(query, self.kernel), prepared_keys)


@keras.saving.register_keras_serializable(package="captioner")
class ConcatAttention(GridAttention):
    """Luong's concat score: ``score(q, k_l) = v^T tanh(W [q; k_l])``, W (query_dim +
    key_dim, units), no bias.

    ``keras.layers.Attention(score_mode="concat")`` is ``sum tanh(q + k)`` with no W; this is
    Luong's form. W [q; k] = W_q q + W_k k (W's two row blocks), so the keys' half is done
    once per image in :meth:`prepare_keys`.
    """

    recurrence = "unrolled"  # the (batch, L, units) energy: see GridAttention

    def build(self, query_shape, keys_shape, values_shape=None):
        self.query_dim = int(query_shape[-1])
        self.kernel = self.add_weight(shape=(query_shape[-1] + keys_shape[-1], self.units),
                                      initializer="glorot_uniform", name="kernel")
        self.energy = self.add_weight(shape=(self.units,), initializer="glorot_uniform",
                                      name="energy")

    def prepare_keys(self, keys):
        return ops.matmul(keys, self.kernel[self.query_dim:])  # (batch, L, units)

    def score(self, query, prepared_keys):
        hidden = ops.tanh(prepared_keys + ops.matmul(query, self.kernel[:self.query_dim])[:, None])
        return ops.einsum("blu,u->bl", hidden, self.energy)


@keras.saving.register_keras_serializable(package="captioner")
class MultiHeadGridAttention(GridAttention):
    """Multi-head attention (Vaswani et al.) from one query over the grid, through
    ``keras.layers.MultiHeadAttention``: ``heads`` heads of scaled dot-product attention
    over learned projections of q, k and v (``units / heads`` wide each), concatenated and
    projected back to the values' size.

    ``alpha`` is the heads' weights averaged (what the renderer and the metrics show);
    ``call(..., return_heads=True)`` also returns the per-head maps (batch, heads, L). The
    context is the output projection of the heads' contexts, not ``alpha``-weighted values.
    """

    def __init__(self, units=128, grid_shape=None, heads=4, **kwargs):
        super().__init__(units, grid_shape, **kwargs)
        if not isinstance(heads, int) or heads < 1 or units % heads:
            raise ValueError(f"heads must be a positive integer that divides units ({units}). "
                             f"Received: heads={heads!r}")
        self.heads = heads

    config_options = ("heads",)

    def build(self, query_shape, keys_shape, values_shape=None):
        values_shape = tuple(values_shape or keys_shape)
        self.attention = keras.layers.MultiHeadAttention(
            self.heads, self.units // self.heads, output_shape=values_shape[-1],
            name="multi_head_attention")
        self.attention.build((query_shape[0], 1, query_shape[-1]), values_shape, tuple(keys_shape))

    def prepare_keys(self, keys):
        """The heads' projections of the keys and of the values (the keys, where no other
        values are given), once per image: {"key", "value"}, each (batch, L, heads, size)."""
        return {"key": self.attention.key_dense(keys), "value": self.attention.value_dense(keys)}

    def call(self, query, keys, values=None, mask=None, prepared_keys=None, return_heads=False):
        """``keras.layers.MultiHeadAttention``'s arithmetic on one query, with its own
        projections; per query only the query's projection, the scores and the output
        projection are computed (``prepared_keys`` holds the rest)."""
        attention = self.attention
        if prepared_keys is None or values is not None:
            prepared_keys = {"key": attention.key_dense(keys),
                             "value": attention.value_dense(keys if values is None else values)}
        projected = attention.query_dense(query[:, None, :])[:, 0]  # (batch, heads, size)
        scale = 1.0 / np.sqrt(float(self.units // self.heads))
        scores = ops.einsum("bhk,blhk->bhl", projected, prepared_keys["key"]) * scale
        # (batch, heads, L)
        heads = masked_softmax(scores, None if mask is None else mask[:, None, :])
        value = prepared_keys["value"]
        mixed = ops.cast(ops.einsum("bhl,blhk->bhk", heads, ops.cast(value, "float32")),
                         value.dtype)
        context = attention.output_dense(mixed[:, None])[:, 0]  # (batch, value_dim)
        alpha = ops.mean(heads, axis=1)
        if return_heads:
            return context, alpha, heads
        return context, alpha

    def get_config(self):
        config = super().get_config()
        config.update(heads=self.heads)
        return config


@keras.saving.register_keras_serializable(package="captioner")
class LocalAttention(GeneralAttention):
    """Luong's local-p attention on a 2-D grid.

    The query predicts a centre p = (H, W) * sigmoid(v_p^T tanh(W_p q)) in grid units (cell
    (i, j) has its centre at (i + 0.5, j + 0.5)), and the general scores' softmax is
    weighted by a Gaussian of sigma = D / 2 around p (D = ``window``):
    ``a_l = align_l * exp(-|c_l - p|^2 / (2 sigma^2))``. With ``window_truncate=True`` only
    cells within D of p in both directions are attended, as in Luong et al.

    Luong leaves these weights unnormalised (they sum to less than 1). With
    ``normalize=True`` (the default) they are divided by their sum, which is the same as
    ``softmax(score_l - |c_l - p|^2 / (2 sigma^2))`` over the window and is computed that
    way (stable in float16; the ``attention_weights`` hook of the base call): the decoder's
    context keeps its scale, the doubly stochastic penalty and attention correctness get a
    distribution, and hard attention can sample from it. ``normalize=False`` gives Luong's weights.
    p is differentiable through the
    Gaussian, so the centre learns from the caption loss.

    ``window_truncate=False`` (the default) cuts nothing off: the Gaussian alone weighs the
    cells, so a strong score far from p still gets some weight and p a gradient from every
    cell.
    On a 2-D grid the cut-off trained badly: in the captioner (12x12 grid, D = 3 or 6) the
    window settled on the background and stayed there (test BLEU-4 0.58-0.79 and attention
    correctness at or below uniform, against 0.92-0.93 and 2.4x uniform without it; see
    the README). If no unmasked cell lies within a truncated window, alpha is all 0.

    Args:
        window: D, in cells (>= 0.5, so that every centre has a cell within reach).
        normalize: see above.
        window_truncate: attend only within D of p (Luong), or everywhere,
            Gaussian-weighted.
    """

    config_options = ("window", "window_truncate")

    def __init__(self, units=128, grid_shape=None, window=3.0, normalize=True,
                 window_truncate=False, **kwargs):
        super().__init__(units, grid_shape, **kwargs)
        if grid_shape is None:
            raise ValueError("LocalAttention needs grid_shape=(H, W)")
        if not window >= 0.5:
            raise ValueError(f"window must be >= 0.5 cells. Received: window={window!r}")
        self.window, self.normalize = float(window), bool(normalize)
        self.window_truncate = bool(window_truncate)
        rows, cols = np.meshgrid(np.arange(self.grid_shape[0]), np.arange(self.grid_shape[1]),
                                 indexing="ij")
        self._centres = np.stack([rows.ravel(), cols.ravel()], -1).astype("float32") + 0.5

    def build(self, query_shape, keys_shape, values_shape=None):
        if keys_shape[1] is not None and keys_shape[1] != len(self._centres):
            raise ValueError(f"LocalAttention over a {self.grid_shape[0]}x{self.grid_shape[1]} "
                             f"grid needs {len(self._centres)} keys. Received: {keys_shape[1]}")
        super().build(query_shape, keys_shape, values_shape)
        self.position_hidden = keras.layers.Dense(self.units, use_bias=False, activation="tanh",
                                                  name="position_hidden")
        self.position = keras.layers.Dense(2, use_bias=False, name="position")
        self.position_hidden.build(query_shape)
        self.position.build((query_shape[0], self.units))

    def centre(self, query):
        """p (batch, 2): the window's centre (row, column) in grid units."""
        size = ops.convert_to_tensor(np.array(self.grid_shape, "float32"))
        return ops.sigmoid(self.position(self.position_hidden(query))) * size

    def attention_weights(self, scores, query, mask=None):
        offset = ops.convert_to_tensor(self._centres)[None] - self.centre(query)[:, None]
        inside = ops.all(ops.abs(offset) <= self.window, axis=-1)  # (batch, L)
        if not self.window_truncate:
            inside = ops.ones_like(inside)
        if mask is not None:
            inside = ops.logical_and(inside, ops.cast(mask, "bool"))
        log_window = -ops.sum(ops.square(offset), -1) / (2.0 * (self.window / 2.0) ** 2)
        if self.normalize:
            return masked_softmax(scores + ops.cast(log_window, scores.dtype), inside)
        return masked_softmax(scores, inside) * ops.cast(ops.exp(log_window), scores.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(window=self.window, normalize=self.normalize,
                      window_truncate=self.window_truncate)
        return config


ATTENTION_LAYERS = {"additive": AdditiveAttention, "dot": DotAttention,
                    "general": GeneralAttention, "concat": ConcatAttention,
                    "scaled_dot": ScaledDotAttention, "multihead": MultiHeadGridAttention,
                    "local": LocalAttention}


def get_attention(score, units, grid_shape=None, options=None, name="attention"):
    """The attention layer registered under ``score``, with ``units`` and ``grid_shape``.

    ``options``: a mapping (a decoder's configuration) from which the layer takes the
    arguments it names in ``config_options`` (multihead: heads; local: window,
    window_truncate); the others are ignored, and missing ones keep the layer's default.
    """
    if score not in ATTENTION_LAYERS:
        raise ValueError(f"Unknown attention score. Received: score={score!r}; "
                         f"known: {', '.join(ATTENTION_LAYERS)}")
    layer = ATTENTION_LAYERS[score]
    chosen = {key: options[key] for key in layer.config_options if key in (options or {})}
    return layer(units=units, grid_shape=grid_shape, name=name, **chosen)
