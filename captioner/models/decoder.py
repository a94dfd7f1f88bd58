"""The LSTM decoder of Show, Attend and Tell (Xu et al. 2015), with soft or hard attention.

One step (:meth:`LSTMDecoder.step`) is the whole model of a word; teacher-forced
training (:meth:`LSTMDecoder.call`) and greedy and beam search (``captioner.search``)
all run that same step.
"""

import keras
from keras import ops

from captioner.config import LSTMDecoderConfig
from captioner.layers.attention import get_attention
from captioner.models import replicas


@keras.saving.register_keras_serializable(package="captioner")
class LSTMDecoder(keras.layers.Layer):
    """An LSTM that attends over the annotation vectors of an image at every word.

    Per step t, with previous word y_{t-1}, state (h_{t-1}, c_{t-1}) and annotations a:
        alpha_t = softmax_l f_att(a_l, h_{t-1})              (batch, L)
        z_t = beta_t * sum_l alpha_tl a_l,  beta_t = sigmoid(f_beta(h_{t-1}))  (the gate, 4.2.1)
        h_t, c_t = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
        logits_t = L_o(dropout(tanh(E y_{t-1} + L_h h_t + L_z z_t)))  (deep output, eq. 7)
    The initial state is h_0 = tanh(f_init_h(mean_l a_l)), c_0 = tanh(f_init_c(mean_l a_l)).
    A learned embedding of each grid cell's position is added to its annotation vector,
    so that the context says *where* it came from (words such as "left" need that):
    ``positions="axes"`` (the default) a vector per grid row plus one per column, as the
    Transformer's, each trained by every cell of its row or column; ``"cells"`` one per
    cell (models before 0.5).

    Hard attention (``attention="hard"``, Section 4.1) replaces the expected context by the
    annotation vector of one cell s_t ~ Categorical(alpha_t), drawn with the layer's
    SeedGenerator. In training a share ``expected_context_rate`` of the steps still gets
    the expected context, as in the paper (the share in use is the variable
    ``context_rate``, which the trainer may anneal from 1, see ``TrainConfig``);
    ``expected_context_draw="step"`` draws that
    choice per caption and per word (every batch then mixes both kinds, which keeps the
    variance of each update lower than all-or-nothing batches), ``"batch"`` draws it once
    per batch for all steps, as the original Theano code does. Either way the draw does
    not depend on the weights, so the REINFORCE estimate stays unbiased. Decoding is
    deterministic: ``hard_inference="argmax"`` (the default: the model looks at one cell,
    the most likely) or ``"expected"`` (the expected context, as soft attention).

    Args:
        vocab_size: V, the number of words including the four special tokens.
        grid_shape: (H, W) of the feature grid, L = H * W.
        config: a ``LSTMDecoderConfig`` (or its dict): the sizes, the dropout rate, soft or
            hard attention and its options, and the attention score with its options
            (passed on to ``captioner.layers.attention.get_attention`` under the same
            names). The loss weights it also holds are the captioner's, not this layer's.
        seed: seeds the sampling of hard attention.

    Call arguments:
        tokens: int (batch, T), <start> followed by the caption (teacher forcing).
        features: (batch, L, D) annotation vectors.
        mask: optional (batch, L) grid mask; masked cells are never attended.

    Returns:
        {"logits": (batch, T, V), "alphas": (batch, T, L)}, and for hard attention also
        "log_policy" (batch, T): log alpha_t(s_t) where a cell was sampled, 0 where the
        expected context was used; and "entropy" (batch, T) of alpha_t.
    """

    def __init__(self, vocab_size, grid_shape=(1, 1), config=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if config is None or isinstance(config, dict):
            config = LSTMDecoderConfig.from_dict(config or {}, "decoder config")
        self.vocab_size, self.grid_shape, self.seed = vocab_size, tuple(grid_shape), seed
        self.decoder_config = config
        self.attention_kind = config.attention
        self.seed_generator = keras.random.SeedGenerator(seed, name="hard_attention_seed")
        self.embedding = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")
        self.init_h = keras.layers.Dense(config.lstm_units, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(config.lstm_units, activation="tanh", name="init_c")
        self.attention = get_attention(config.score, config.attention_units, self.grid_shape,
                                       options=config.to_dict())
        self.gate = keras.layers.Dense(1, activation="sigmoid", name="gate")
        self.lstm = keras.layers.LSTMCell(config.lstm_units, name="lstm")
        self.output_h = keras.layers.Dense(config.embedding_dim, name="output_h")
        self.output_z = keras.layers.Dense(config.embedding_dim, use_bias=False, name="output_z")
        self.dropout = replicas.Dropout(config.dropout, name="dropout")
        self.logits = keras.layers.Dense(vocab_size, name="logits")
        self.recurrence = None  # "scan" or "unrolled" to override the attention's choice

    def build(self, tokens_shape, features_shape):
        batch, cells, dim = features_shape
        small = keras.initializers.RandomNormal(stddev=0.02)
        if self.decoder_config.positions == "cells":
            self.positions = self.add_weight(shape=(cells, dim), initializer=small,
                                             name="positions")
        else:
            rows, columns = self.grid_shape
            self.row_positions = self.add_weight(shape=(rows, 1, dim), initializer=small,
                                                 name="row_positions")
            self.column_positions = self.add_weight(shape=(1, columns, dim),
                                                    initializer=small, name="column_positions")
        self.embedding.build(tokens_shape)
        self.init_h.build((batch, dim))
        self.init_c.build((batch, dim))
        config = self.decoder_config
        query_dim = self.attention.query_size(dim) or config.lstm_units
        if query_dim != config.lstm_units:
            # e.g. dot scores compare h with each annotation: project h to the size the
            # score asks for (which makes h^T P^T a, Luong's general form, in another guise)
            self.query_to_keys = keras.layers.Dense(query_dim, use_bias=False,
                                                    name="query_to_keys")
            self.query_to_keys.build((batch, config.lstm_units))
        self.attention.build((batch, query_dim), (batch, cells, dim))
        self.gate.build((batch, config.lstm_units))
        self.lstm.build((batch, config.embedding_dim + dim))
        if self.attention_kind == "hard":
            # The share of expected contexts in use; a variable, so that training can
            # start from soft attention and anneal to ``expected_context_rate``.
            self.context_rate = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(config.expected_context_rate),
                trainable=False, name="context_rate")
        self.output_h.build((batch, config.lstm_units))
        self.output_z.build((batch, dim))
        self.logits.build((batch, config.embedding_dim))

    def position_vectors(self):
        """(L, D): what is added to each cell's annotation vector (``positions``)."""
        if self.decoder_config.positions == "cells":
            return self.positions
        rows, columns = self.grid_shape
        grid = self.row_positions + self.column_positions  # (H, W, D)
        return ops.reshape(grid, (rows * columns, ops.shape(grid)[-1]))

    def prepare(self, features, mask=None):
        """Per-image work shared by every step: the decoder's ``memory``, a dict of arrays
        whose first axis is the batch (search tiles it per beam with keras.tree)."""
        # in the layer's compute dtype (16 bits under a mixed policy; features may come
        # from a float32 or float16 feature cache)
        annotations = ops.cast(features, self.compute_dtype) + self.position_vectors()[None]
        memory = {"annotations": annotations,
                  "keys": self.attention.prepare_keys(annotations)}
        if mask is not None:
            memory["mask"] = ops.cast(mask, annotations.dtype)
        return memory

    def initial_state(self, memory, steps=None):
        """[h_0, c_0], each (batch, lstm_units), from the mean annotation vector (for any
        number of ``steps``)."""
        annotations = memory["annotations"]
        if "mask" in memory:
            weights = memory["mask"][:, :, None]
            mean = ops.sum(annotations * weights, 1) / ops.maximum(ops.sum(weights, 1), 1.0)
        else:
            mean = ops.mean(annotations, axis=1)  # (batch, D)
        return [self.init_h(mean), self.init_c(mean)]

    def step(self, tokens, state, memory, training=False):
        """One word: tokens (batch,) -> (logits (batch, V), new state, alpha (batch, L))."""
        outputs = self._step(tokens, state, memory, training)
        return outputs["logits"], outputs["state"], outputs["alpha"]

    def _glimpse(self, context, alpha, annotations, training, use_expected):
        """Hard attention's context: a sampled cell (training) or the most likely one."""
        cells = ops.shape(alpha)[1]
        if not training:
            if self.decoder_config.hard_inference == "expected":
                return context, {}
            best = ops.top_k(alpha, 1)[1][:, 0]  # argmax; exports to ONNX (see greedy_graph)
            chosen = ops.one_hot(best, cells, dtype=alpha.dtype)
            return ops.cast(ops.sum(chosen[:, :, None] * annotations, 1), annotations.dtype), {}
        log_alpha = ops.where(alpha > 0, ops.log(ops.maximum(alpha, 1e-30)), -1e9)  # (batch, L)
        sample = replicas.categorical(log_alpha, self.seed_generator)
        chosen = ops.one_hot(sample, cells, dtype=alpha.dtype)  # (batch, L)
        sampled_context = ops.cast(ops.sum(chosen[:, :, None] * annotations, 1),
                                   annotations.dtype)  # (batch, D)
        if use_expected is None:  # drawn per caption for this word
            use_expected = replicas.draw(keras.random.uniform, (ops.shape(alpha)[0],),
                                         self.seed_generator) < self.context_rate
        use_expected = ops.cast(ops.broadcast_to(use_expected, (ops.shape(alpha)[0],)), alpha.dtype)
        share = ops.cast(use_expected[:, None], context.dtype)
        context = share * context + (1.0 - share) * sampled_context
        log_policy = ops.sum(chosen * log_alpha, -1) * (1.0 - use_expected)  # (batch,)
        entropy = -ops.sum(alpha * ops.where(alpha > 0, log_alpha, 0.0), -1)  # (batch,)
        return context, {"log_policy": log_policy, "entropy": entropy}

    def _project_words(self, embedded):
        """The words' share of the LSTM's input projection, E y_{t-1} W_y + b: (..., 4 units).
        It does not depend on the recurrence, so ``call`` computes it for every step at
        once, before the loop, as one (batch * T, E) x (E, 4 units) product."""
        kernel = self.lstm.kernel[: self.decoder_config.embedding_dim]  # W = [W_y; W_z]
        projected = ops.matmul(embedded, kernel)
        return projected + self.lstm.bias if self.lstm.use_bias else projected

    def _lstm(self, projected, context, state):
        """``keras.layers.LSTMCell`` (its weights, gate order and activations) on the input
        [E y; z], with the words' share of the input projection already done."""
        hidden, carry = state
        cell = self.lstm
        z = (projected + ops.matmul(context, cell.kernel[self.decoder_config.embedding_dim:])
             + ops.matmul(hidden, cell.recurrent_kernel))
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        carry = (cell.recurrent_activation(z_f) * carry
                 + cell.recurrent_activation(z_i) * cell.activation(z_c))
        hidden = cell.recurrent_activation(z_o) * cell.activation(carry)
        hidden, carry = ops.cast(hidden, self.compute_dtype), ops.cast(carry, self.compute_dtype)
        return hidden, [hidden, carry]

    def _recur(self, projected, state, memory, training=False, use_expected=None):
        """The recurrent part of a word: attend, read the context, advance the LSTM.
        projected (batch, 4 units), the word's share of the LSTM input (``_project_words``)
        -> {"output" (batch, units), "context" (batch, D), "alpha" (batch, L), "state",
        and hard attention's "log_policy", "entropy"}."""
        hidden, _ = state
        query = self.query_to_keys(hidden) if hasattr(self, "query_to_keys") else hidden
        context, alpha = self.attention(query, memory["annotations"], mask=memory.get("mask"),
                                        prepared_keys=memory["keys"])
        extras = {}
        if self.attention_kind == "hard":
            context, extras = self._glimpse(context, alpha, memory["annotations"], training,
                                            use_expected)
        context = self.gate(hidden) * context  # (batch, D)
        output, state = self._lstm(projected, context, state)
        return {"output": output, "context": context, "alpha": alpha, "state": list(state),
                **extras}

    def _emit(self, embedded, output, context, training=False):
        """The deep output layer (eq. 7): logits of the next word, for one step (batch, .)
        or for all steps at once (batch, T, .): one large matrix product, not T small ones."""
        deep = ops.tanh(embedded + self.output_h(output) + self.output_z(context))
        return self.logits(self.dropout(deep, training=training))  # (..., V)

    def _step(self, tokens, state, memory, training=False, use_expected=None):
        embedded = self.embedding(tokens)  # (batch, E)
        outputs = self._recur(self._project_words(embedded), state, memory, training,
                              use_expected)
        outputs["logits"] = self._emit(embedded, outputs.pop("output"),
                                       outputs.pop("context"), training)
        return outputs

    def call(self, tokens, features, mask=None, training=False):
        memory = self.prepare(features, mask)
        state = self.initial_state(memory)
        use_expected = None
        if (self.attention_kind == "hard" and training
                and self.decoder_config.expected_context_draw == "batch"):
            use_expected = keras.random.uniform((1,), seed=self.seed_generator) \
                < self.context_rate  # one draw for every caption and word
        embedded = self.embedding(tokens)  # (batch, T, E)
        if self._scanned(tokens, training):
            steps = self._scan(tokens, state, memory, training, use_expected)
        else:  # T is static: one traced graph per caption length
            projected = self._project_words(embedded)  # (batch, T, 4 units)
            recurrent = []
            for t in range(tokens.shape[1]):
                outputs = self._recur(projected[:, t], state, memory, training, use_expected)
                state = outputs.pop("state")
                recurrent.append(outputs)
            steps = {key: ops.stack([step[key] for step in recurrent], 1)  # (batch, T, ...)
                     for key in recurrent[0]}
        logits = self._emit(embedded, steps.pop("output"), steps.pop("context"), training)
        names = {"alpha": "alphas", "log_policy": "log_policy", "entropy": "entropy"}
        return {"logits": logits, **{names[key]: value for key, value in steps.items()}}

    def _scanned(self, tokens, training):
        """Whether ``call`` runs the recurrence as ``ops.scan`` (one step's graph, looped)
        rather than unrolled over the caption: always for a length known only when it
        runs (TensorFlow traces one graph for batches of any length; JAX always knows
        it), else as the attention layer prefers (``GridAttention.recurrence``, measured
        by ``benchmarks/train_speed.py``; ``recurrence`` on the decoder overrides it), and
        never for hard attention in training, whose draws advance the seed state at every
        step (a variable a JAX scan cannot update)."""
        if tokens.shape[1] is None:
            return True
        if self.attention_kind == "hard" and training:
            return False
        return (self.recurrence or self.attention.recurrence) == "scan"

    def _scan(self, tokens, state, memory, training, use_expected):
        """The recurrence of ``call`` as ``ops.scan`` over the time axis (see ``_scanned``).

        The first step runs outside the scan to give the carry its structure; the scan's
        outputs repeat the carry (TensorFlow's ``scan`` wants them alike).
        """
        def words(token):
            return self._project_words(self.embedding(token))
        first = self._recur(words(tokens[:, 0]), state, memory, training, use_expected)

        def step(carry, token):  # tokens, not their embeddings: no gradient through xs
            outputs = self._recur(words(token), carry["state"], memory, training, use_expected)
            return outputs, outputs
        _, rest = ops.scan(step, first, ops.transpose(tokens[:, 1:]))  # (T - 1, batch, ...)
        return {key: ops.concatenate([first[key][:, None], ops.moveaxis(rest[key], 0, 1)], 1)
                for key in first if key != "state"}

    def compute_output_shape(self, tokens_shape, features_shape):
        batch, steps = tokens_shape
        return {"logits": (batch, steps, self.vocab_size),
                "alphas": (batch, steps, features_shape[1])}

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, grid_shape=list(self.grid_shape),
                      config=self.decoder_config.to_dict(), seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="captioner")
class AttentionDecoder(LSTMDecoder):
    """``LSTMDecoder``'s name in 0.4: model files saved then name it, and load as one."""
