"""The Transformer decoder (Vaswani et al. 2017): words attend to the earlier words and
to the CNN's grid; its cross-attention weights are the maps.

``TransformerDecoder`` has the LSTM decoder's interface (``prepare``, ``initial_state``,
``step``, ``call``), so training, ``captioner.search`` and everything after them run
either. Its layers:

``TransformerBlock`` is one layer: multi-head self-attention (causal over words, or over
every cell of a grid), optionally multi-head cross-attention over a memory (the grid), and
a feed-forward net, each a residual sub-layer with its layer norm before it ("pre") or
after the sum ("post"). The attention runs on ``keras.layers.MultiHeadAttention``'s own
projections (``query_dense``, ``key_dense``, ``value_dense``, ``output_dense``), with the
weights computed here, in float32 (``masked_softmax``), so that

- the cross-attention weights of every head are returned (the maps), which
  ``MultiHeadAttention`` only gives for one call at a time and keras-hub's
  ``TransformerDecoder`` not at all;
- a decoding step reads its keys and values from a cache (``TransformerBlock.step``):
  the earlier words' self-attention keys and values, written one position per step, and
  the grid's, projected once per image (``memory_keys``).

``GridPositionEmbedding`` gives each grid cell a 2-D position (a learned row vector plus a
learned column vector); ``sinusoid`` is the words' position encoding, for any length.
"""

import keras
import numpy as np
from keras import ops

from captioner.config import TransformerConfig
from captioner.layers.attention import masked_softmax
from captioner.models import replicas


def sinusoid(positions, width):
    """Vaswani's position encoding: positions int (...) -> float32 (..., width), sines in
    the even channels and cosines in the odd ones, wavelengths 2 pi ... 10000 * 2 pi."""
    rates = np.exp(-np.log(10000.0) * np.arange(0, width, 2) / width).astype("float32")
    angles = ops.cast(positions, "float32")[..., None] * rates  # (..., width / 2)
    return ops.reshape(ops.stack([ops.sin(angles), ops.cos(angles)], -1),
                       ops.shape(angles)[:-1] + (width,))


@keras.saving.register_keras_serializable(package="captioner")
class GridPositionEmbedding(keras.layers.Layer):
    """Adds each grid cell's 2-D position to its vector: row r's learned vector plus
    column c's (H + W vectors, not H * W: a cell's neighbours share its row or column).

    Args:
        grid_shape: (H, W); the inputs are (batch, H * W, D), row-major.
    """

    def __init__(self, grid_shape, **kwargs):
        super().__init__(**kwargs)
        self.grid_shape = tuple(grid_shape)

    def build(self, input_shape):
        rows, columns = self.grid_shape
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.rows = self.add_weight(shape=(rows, input_shape[-1]), initializer=init, name="rows")
        self.columns = self.add_weight(shape=(columns, input_shape[-1]), initializer=init,
                                       name="columns")

    def call(self, inputs):
        rows, columns = self.grid_shape
        positions = ops.reshape(self.rows[:, None] + self.columns[None],
                                (rows * columns, ops.shape(self.rows)[-1]))
        return inputs + ops.cast(positions, inputs.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "grid_shape": list(self.grid_shape)}


@keras.saving.register_keras_serializable(package="captioner")
class TransformerBlock(keras.layers.Layer):
    """One Transformer layer.

    Args:
        width: d_model, the width of the inputs and outputs.
        heads: attention heads, of width / heads each.
        ff_width: the feed-forward net's hidden width.
        dropout: rate after every sub-layer.
        norm: "pre" (layer norm before each sub-layer) or "post" (after the residual sum).
        causal: self-attention only to earlier positions (words) or to all (grid cells).
        cross: whether it has cross-attention over a memory.

    Call arguments (the whole sequence at once):
        inputs: (batch, T, width).
        memory_keys: ``memory_keys(memory)``, with ``cross``.
        memory_mask: optional (batch, S), 1 where the memory may be attended.
        mask: optional (batch, T), 1 where the inputs may be attended (a grid's cells).

    Returns:
        (outputs (batch, T, width), cross-attention weights (batch, heads, T, S) float32,
        or None without ``cross``).
    """

    def __init__(self, width, heads, ff_width, dropout=0.1, norm="pre", causal=True,
                 cross=True, **kwargs):
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"heads must divide width ({width}). Received: heads={heads}")
        self.width, self.heads, self.ff_width = width, heads, ff_width
        self.rate, self.norm, self.causal, self.cross = dropout, norm, causal, cross
        size = width // heads
        self.self_attention = keras.layers.MultiHeadAttention(heads, size, name="self_attention")
        self.self_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="self_norm")
        if cross:
            self.cross_attention = keras.layers.MultiHeadAttention(heads, size,
                                                                   name="cross_attention")
            self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="cross_norm")
        self.hidden = keras.layers.Dense(ff_width, activation="relu", name="ff_hidden")
        self.project = keras.layers.Dense(width, name="ff_output")
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="ff_norm")
        self.dropout = replicas.Dropout(dropout, name="dropout")

    def build(self, inputs_shape, memory_shape=None):
        inputs_shape = tuple(inputs_shape)
        self.self_attention.build(inputs_shape, inputs_shape)
        self.self_norm.build(inputs_shape)
        if self.cross:
            memory_shape = tuple(memory_shape or inputs_shape)
            self.cross_attention.build(inputs_shape, memory_shape)
            self.cross_norm.build(inputs_shape)
        self.hidden.build(inputs_shape)
        self.project.build(inputs_shape[:-1] + (self.ff_width,))
        self.ff_norm.build(inputs_shape)

    @staticmethod
    def project_keys(attention, inputs):
        """{"key", "value"}: ``attention``'s projections of ``inputs`` (batch, S, heads,
        size) each."""
        return {"key": attention.key_dense(inputs), "value": attention.value_dense(inputs)}

    def memory_keys(self, memory):
        """The cross-attention's keys and values of a memory (batch, S, width): computed
        once per image, read by every word."""
        return self.project_keys(self.cross_attention, memory)

    def attend(self, attention, query, keys, mask=None):
        """Scaled dot-product attention of ``query`` (batch, T, width) over projected
        ``keys`` ({"key", "value"}, (batch, S, heads, size)), with ``attention``'s query
        and output projections; ``mask`` broadcasts to (batch, heads, T, S). Returns
        (outputs (batch, T, width), weights (batch, heads, T, S) float32)."""
        projected = attention.query_dense(query)  # (batch, T, heads, size)
        scale = 1.0 / np.sqrt(float(self.width // self.heads))
        scores = ops.einsum("bthk,bshk->bhts", projected, keys["key"]) * scale
        weights = masked_softmax(scores, mask)
        value = keys["value"]
        mixed = ops.cast(ops.einsum("bhts,bshk->bthk", weights, ops.cast(value, "float32")),
                         value.dtype)
        return attention.output_dense(mixed), weights

    def _sublayer(self, inputs, norm, compute, training):
        """A residual sub-layer: x + dropout(f(norm(x))) (pre) or norm(x + dropout(f(x)))."""
        outputs = compute(norm(inputs) if self.norm == "pre" else inputs)
        outputs = inputs + self.dropout(outputs, training=training)
        return outputs if self.norm == "pre" else norm(outputs)

    def _layer(self, inputs, self_keys, self_mask, memory_keys, memory_mask, training):
        """The three sub-layers; ``self_keys(h)`` gives the self-attention's keys of its
        normalised input h (the sequence's, or the cache's with h written in)."""
        found = {}

        def self_attend(h):
            found["keys"] = self_keys(h)
            return self.attend(self.self_attention, h, found["keys"], self_mask)[0]

        def cross_attend(h):
            outputs, found["weights"] = self.attend(self.cross_attention, h, memory_keys,
                                                    memory_mask)
            return outputs

        outputs = self._sublayer(inputs, self.self_norm, self_attend, training)
        if self.cross:
            outputs = self._sublayer(outputs, self.cross_norm, cross_attend, training)
        outputs = self._sublayer(outputs, self.ff_norm,
                                 lambda h: self.project(self.hidden(h)), training)
        return outputs, found

    def call(self, inputs, memory_keys=None, memory_mask=None, mask=None, training=False):
        steps = ops.shape(inputs)[1]
        if self.causal:
            positions = ops.arange(steps)
            self_mask = (positions[:, None] >= positions[None, :])[None, None]  # (1, 1, T, T)
        else:
            self_mask = None if mask is None else mask[:, None, None, :]
        outputs, found = self._layer(
            inputs, lambda h: self.project_keys(self.self_attention, h), self_mask,
            memory_keys, None if memory_mask is None else memory_mask[:, None, None, :],
            training)
        return outputs, found.get("weights")

    def step(self, inputs, cache, position, memory_keys, memory_mask=None):
        """One word (decoding, no dropout): inputs (batch, 1, width) at ``position``
        (batch,) int; ``cache`` {"key", "value"} (batch, steps, heads, size), the earlier
        words' self-attention keys and values. Returns (outputs (batch, 1, width), the
        cache with this word's written at ``position``, cross-attention weights (batch,
        heads, 1, S))."""
        steps = ops.shape(cache["key"])[1]
        here = ops.arange(steps)[None] == position[:, None]  # (batch, steps)
        visible = (ops.arange(steps)[None] <= position[:, None])[:, None, None, :]

        def written(h):
            new = self.project_keys(self.self_attention, h)  # (batch, 1, heads, size)
            return {name: ops.where(here[:, :, None, None], new[name], cache[name])
                    for name in ("key", "value")}

        outputs, found = self._layer(
            inputs, written, visible, memory_keys,
            None if memory_mask is None else memory_mask[:, None, None, :], False)
        return outputs, found["keys"], found["weights"]

    def get_config(self):
        return {**super().get_config(), "width": self.width, "heads": self.heads,
                "ff_width": self.ff_width, "dropout": self.rate, "norm": self.norm,
                "causal": self.causal, "cross": self.cross}


def reduce_maps(maps, how):
    """The per-word map of a Transformer's cross-attention maps (..., layers, heads, L):
    the mean over heads of the last layer ("last_layer"), of every layer ("all_layers")
    or of the first ("first_layer"), (..., L)."""
    if how == "last_layer":
        return ops.mean(maps[..., -1, :, :], axis=-2)
    if how == "first_layer":
        return ops.mean(maps[..., 0, :, :], axis=-2)
    return ops.mean(maps, axis=(-3, -2))


@keras.saving.register_keras_serializable(package="captioner")
class TransformerDecoder(keras.layers.Layer):
    """A Transformer over the words, cross-attending to the grid.

    The annotation vectors a (batch, L, D) are projected to d_model, given their 2-D
    positions (``GridPositionEmbedding``) and, with ``encoder_layers``, run through that
    many self-attention layers over the grid: the memory m. The words are embedded
    (times sqrt(d_model)), given their positions (``sinusoid``) and run through ``layers``
    ``TransformerBlock``s (causal self-attention, cross-attention over m, feed-forward);
    a last layer norm (pre-norm) and a dense layer give the next word's logits.

    The maps: per word, the cross-attention weights of every layer and head over the
    grid ("attention", (batch, T, layers, heads, L)), and one map per word ("alphas",
    (batch, T, L)), ``reduce_maps`` of them by ``config.attention_map``: what heat maps,
    attention correctness, supervision and the doubly stochastic penalty use.

    Decoding (``step``) keeps a cache: per layer the earlier words' self-attention keys
    and values (batch, steps, heads, size), written one position per word, and the
    memory's cross-attention keys and values, projected once per image (``prepare``).
    With ``kv_cache = False`` a step instead recomputes the whole prefix (the reference
    that the cache is tested against, and what ``benchmarks/transformer.py`` times).

    Args:
        vocab_size: V, the number of words including the four special tokens.
        grid_shape: (H, W) of the feature grid, L = H * W.
        config: a ``TransformerConfig`` (or its dict).
        seed: unused (the LSTM decoder's hard attention seed); dropout has its own.
    """

    def __init__(self, vocab_size, grid_shape=(1, 1), config=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if config is None or isinstance(config, dict):
            config = TransformerConfig.from_dict(config or {}, "decoder config")
        self.vocab_size, self.grid_shape, self.seed = vocab_size, tuple(grid_shape), seed
        self.decoder_config = config
        width = config.model_width
        block = dict(width=width, heads=config.heads, ff_width=config.ff_width,
                     dropout=config.dropout, norm=config.norm)
        self.grid_projection = keras.layers.Dense(width, name="grid_projection")
        self.grid_positions = GridPositionEmbedding(self.grid_shape, name="grid_positions")
        self.grid_encoder = [TransformerBlock(causal=False, cross=False, name=f"grid_layer_{i}",
                                              **block) for i in range(config.encoder_layers)]
        self.embedding = keras.layers.Embedding(vocab_size, width, name="embedding")
        self.blocks = [TransformerBlock(name=f"layer_{i}", **block)
                       for i in range(config.layers)]
        if config.norm == "pre":
            self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
            if config.encoder_layers:
                self.grid_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="grid_norm")
        self.dropout = replicas.Dropout(config.dropout, name="dropout")
        self.logits = keras.layers.Dense(vocab_size, name="logits")
        self.kv_cache = True  # False: every step recomputes the whole prefix (reference)

    def build(self, tokens_shape, features_shape):
        batch, cells, _ = features_shape
        width = self.decoder_config.model_width
        self.grid_projection.build(features_shape)
        grid = (batch, cells, width)
        self.grid_positions.build(grid)
        for block in self.grid_encoder:
            block.build(grid)
        if hasattr(self, "grid_norm"):
            self.grid_norm.build(grid)
        self.embedding.build(tokens_shape)
        words = tuple(tokens_shape) + (width,)
        for block in self.blocks:
            block.build(words, grid)
        if hasattr(self, "final_norm"):
            self.final_norm.build(words)
        self.logits.build(words)

    @property
    def attention_shape(self):
        """(layers, heads): the maps each word has."""
        return (self.decoder_config.layers, self.decoder_config.heads)

    def prepare(self, features, mask=None, training=False):
        """Per-image work shared by every step: {"annotations": the memory (batch, L,
        d_model), "cross": per layer the cross-attention's {"key", "value"}, and "mask"}
        (search tiles it per beam with keras.tree)."""
        memory = self.grid_positions(self.grid_projection(ops.cast(features, self.compute_dtype)))
        memory = self.dropout(memory, training=training)
        mask = None if mask is None else ops.cast(mask, memory.dtype)
        for block in self.grid_encoder:
            memory, _ = block(memory, mask=mask, training=training)
        if hasattr(self, "grid_norm"):
            memory = self.grid_norm(memory)
        prepared = {"annotations": memory,
                    "cross": [block.memory_keys(memory) for block in self.blocks]}
        if mask is not None:
            prepared["mask"] = mask
        return prepared

    def _words(self, tokens, positions, training=False):
        """Token ids -> scaled embeddings plus positions, (..., d_model)."""
        width = self.decoder_config.model_width
        embedded = self.embedding(tokens) * ops.cast(np.sqrt(width), self.compute_dtype)
        embedded = embedded + ops.cast(sinusoid(positions, width), embedded.dtype)
        return self.dropout(embedded, training=training)

    def _output(self, outputs):
        if hasattr(self, "final_norm"):
            outputs = self.final_norm(outputs)
        return self.logits(outputs)

    def _decode(self, tokens, memory, training=False):
        """Teacher-forced: tokens (batch, T) -> (logits (batch, T, V), maps (batch, T,
        layers, heads, L) float32)."""
        outputs = self._words(tokens, ops.arange(ops.shape(tokens)[1])[None], training)
        maps = []
        for block, keys in zip(self.blocks, memory["cross"]):
            outputs, weights = block(outputs, keys, memory.get("mask"), training=training)
            maps.append(weights)  # (batch, heads, T, L)
        maps = ops.transpose(ops.stack(maps, 1), (0, 3, 1, 2, 4))
        return self._output(outputs), maps

    def call(self, tokens, features, mask=None, training=False):
        memory = self.prepare(features, mask, training)
        logits, maps = self._decode(tokens, memory, training)
        return {"logits": logits, "alphas": reduce_maps(maps, self.decoder_config.attention_map),
                "attention": maps}

    def initial_state(self, memory, steps=None):
        """The decoding state of ``steps`` words at most: {"position" (batch,), and per
        layer the self-attention cache "key", "value" (batch, steps, heads, size)} (or,
        without the cache, the words so far "tokens" (batch, steps))."""
        if steps is None:
            raise ValueError("a Transformer's decoding state needs its number of steps")
        batch = ops.shape(memory["annotations"])[0]
        state = {"position": ops.zeros((batch,), "int32")}
        if not self.kv_cache:
            return {**state, "tokens": ops.zeros((batch, steps), "int32")}
        config = self.decoder_config
        empty = ops.zeros((batch, steps, config.heads, config.model_width // config.heads),
                          self.compute_dtype)
        return {**state, "cache": [{"key": empty, "value": empty} for _ in self.blocks]}

    def step(self, tokens, state, memory, training=False):
        """One word: tokens (batch,) -> (logits (batch, V), new state, alpha (batch, L))."""
        position = state["position"]
        if not self.kv_cache:
            return self._recompute_step(tokens, state, memory)
        outputs = self._words(tokens[:, None], position[:, None])
        caches, maps = [], []
        for block, cache, keys in zip(self.blocks, state["cache"], memory["cross"]):
            outputs, cache, weights = block.step(outputs, cache, position, keys,
                                                 memory.get("mask"))
            caches.append(cache)
            maps.append(weights[:, :, 0])  # (batch, heads, L)
        alpha = reduce_maps(ops.stack(maps, 1), self.decoder_config.attention_map)
        return (self._output(outputs)[:, 0], {"position": position + 1, "cache": caches},
                alpha)

    def _recompute_step(self, tokens, state, memory):
        """A step without the cache: the word written into the prefix, and the whole
        prefix (all ``steps`` positions, the later ones masked by causality) decoded."""
        position = state["position"]
        here = ops.arange(ops.shape(state["tokens"])[1])[None] == position[:, None]
        prefix = ops.where(here, tokens[:, None], state["tokens"])
        logits, maps = self._decode(prefix, memory)
        pick = ops.cast(here, "float32")
        logits = ops.einsum("bt,btv->bv", pick, ops.cast(logits, "float32"))
        alpha = reduce_maps(ops.einsum("bt,btnhl->bnhl", pick, maps),
                            self.decoder_config.attention_map)
        return logits, {"position": position + 1, "tokens": prefix}, alpha

    def compute_output_shape(self, tokens_shape, features_shape):
        batch, steps = tokens_shape
        layers, heads = self.attention_shape
        return {"logits": (batch, steps, self.vocab_size),
                "alphas": (batch, steps, features_shape[1]),
                "attention": (batch, steps, layers, heads, features_shape[1])}

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, grid_shape=list(self.grid_shape),
                      config=self.decoder_config.to_dict(), seed=self.seed)
        return config
