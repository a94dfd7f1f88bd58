"""The LSTM decoder of Show, Attend and Tell (Xu et al. 2015), with soft attention.

One step (:meth:`AttentionDecoder.step`) is the whole model of a word; teacher-forced
training (:meth:`AttentionDecoder.call`) and greedy and beam search (``captioner.search``)
all run that same step.
"""

import keras
from keras import ops

from captioner.layers.attention import get_attention


@keras.saving.register_keras_serializable(package="captioner")
class AttentionDecoder(keras.layers.Layer):
    """An LSTM that attends over the annotation vectors of an image at every word.

    Per step t, with previous word y_{t-1}, state (h_{t-1}, c_{t-1}) and annotations a:
        alpha_t = softmax_l f_att(a_l, h_{t-1})              (batch, L)
        z_t = beta_t * sum_l alpha_tl a_l,  beta_t = sigmoid(f_beta(h_{t-1}))  (the gate, 4.2.1)
        h_t, c_t = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
        logits_t = L_o(dropout(tanh(E y_{t-1} + L_h h_t + L_z z_t)))  (deep output, eq. 7)
    The initial state is h_0 = tanh(f_init_h(mean_l a_l)), c_0 = tanh(f_init_c(mean_l a_l)).
    A learned embedding of each grid cell's position is added to its annotation vector,
    so that the context says *where* it came from (words such as "left" need that).

    Args:
        vocab_size: V, the number of words including the four special tokens.
        embedding_dim, lstm_units, attention_units: sizes (see DecoderConfig).
        dropout: rate before the output layer.
        score: the attention score (``captioner.layers.attention``).
        grid_shape: (H, W) of the feature grid, L = H * W.

    Call arguments:
        tokens: int (batch, T), <start> followed by the caption (teacher forcing).
        features: (batch, L, D) annotation vectors.
        mask: optional (batch, L) grid mask; masked cells are never attended.

    Returns:
        ``(logits, alphas)``: (batch, T, V) and (batch, T, L).
    """

    def __init__(self, vocab_size, embedding_dim=128, lstm_units=256, attention_units=128,
                 dropout=0.3, score="additive", grid_shape=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.lstm_units, self.attention_units = lstm_units, attention_units
        self.dropout_rate, self.score = dropout, score
        self.grid_shape = tuple(grid_shape)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.init_h = keras.layers.Dense(lstm_units, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(lstm_units, activation="tanh", name="init_c")
        self.attention = get_attention(score, attention_units, self.grid_shape)
        self.gate = keras.layers.Dense(1, activation="sigmoid", name="gate")
        self.lstm = keras.layers.LSTMCell(lstm_units, name="lstm")
        self.output_h = keras.layers.Dense(embedding_dim, name="output_h")
        self.output_z = keras.layers.Dense(embedding_dim, use_bias=False, name="output_z")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.logits = keras.layers.Dense(vocab_size, name="logits")

    def build(self, tokens_shape, features_shape):
        batch, cells, dim = features_shape
        self.positions = self.add_weight(
            shape=(cells, dim), initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="positions")
        self.embedding.build(tokens_shape)
        self.init_h.build((batch, dim))
        self.init_c.build((batch, dim))
        self.attention.build((batch, self.lstm_units), (batch, cells, dim))
        self.gate.build((batch, self.lstm_units))
        self.lstm.build((batch, self.embedding_dim + dim))
        self.output_h.build((batch, self.lstm_units))
        self.output_z.build((batch, dim))
        self.logits.build((batch, self.embedding_dim))

    def prepare(self, features, mask=None):
        """Per-image work shared by every step: the decoder's ``memory``, a dict of arrays
        whose first axis is the batch (search tiles it per beam with keras.tree)."""
        annotations = features + self.positions[None]  # (batch, L, D)
        memory = {"annotations": annotations,
                  "keys": self.attention.prepare_keys(annotations)}
        if mask is not None:
            memory["mask"] = ops.cast(mask, annotations.dtype)
        return memory

    def initial_state(self, memory):
        """[h_0, c_0], each (batch, lstm_units), from the mean annotation vector."""
        annotations = memory["annotations"]
        if "mask" in memory:
            weights = memory["mask"][:, :, None]
            mean = ops.sum(annotations * weights, 1) / ops.maximum(ops.sum(weights, 1), 1.0)
        else:
            mean = ops.mean(annotations, axis=1)  # (batch, D)
        return [self.init_h(mean), self.init_c(mean)]

    def step(self, tokens, state, memory, training=False):
        """One word: tokens (batch,) -> (logits (batch, V), new state, alpha (batch, L))."""
        hidden, _ = state
        embedded = self.embedding(tokens)  # (batch, E)
        context, alpha = self.attention(hidden, memory["annotations"], mask=memory.get("mask"),
                                        prepared_keys=memory["keys"])
        context = self.gate(hidden) * context  # (batch, D)
        output, state = self.lstm(ops.concatenate([embedded, context], -1), state,
                                  training=training)
        deep = ops.tanh(embedded + self.output_h(output) + self.output_z(context))
        logits = self.logits(self.dropout(deep, training=training))  # (batch, V)
        return logits, list(state), alpha

    def call(self, tokens, features, mask=None, training=False):
        memory = self.prepare(features, mask)
        state = self.initial_state(memory)
        all_logits, all_alphas = [], []
        for t in range(tokens.shape[1]):  # T is static: one traced graph per caption length
            logits, state, alpha = self.step(tokens[:, t], state, memory, training=training)
            all_logits.append(logits)
            all_alphas.append(alpha)
        return ops.stack(all_logits, 1), ops.stack(all_alphas, 1)  # (batch, T, V), (batch, T, L)

    def compute_output_shape(self, tokens_shape, features_shape):
        batch, steps = tokens_shape
        return (batch, steps, self.vocab_size), (batch, steps, features_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embedding_dim=self.embedding_dim,
                      lstm_units=self.lstm_units, attention_units=self.attention_units,
                      dropout=self.dropout_rate, score=self.score, grid_shape=list(self.grid_shape))
        return config
