"""The decoders' architecture sections, one per decoder ``kind`` (``DECODERS``): the LSTM
of Show, Attend and Tell, and the Transformer."""

import dataclasses
import typing
from typing import Literal

from captioner.config.base import Config, check_positive, check_range, option
from captioner.errors import ConfigError

# the attention scores: captioner.layers.attention.ATTENTION_LAYERS registers one layer each
Score = Literal["additive", "dot", "general", "concat", "scaled_dot", "multihead", "local"]


def attention_scores():
    """The attention scores a decoder can use (the layer registry has one layer each)."""
    return typing.get_args(Score)


@dataclasses.dataclass
class LSTMDecoderConfig(Config):
    """The LSTM decoder's architecture (``captioner.models.decoder``): the decoder of
    ``kind`` "lstm". Another kind of decoder has a section of its own."""
    title = "decoder"
    MOST = {"embedding_dim": 8192, "lstm_units": 8192, "attention_units": 8192, "heads": 256,
            "window": 1024.0}
    kind: Literal["lstm"] = option("lstm", "lstm: Show, Attend and Tell's LSTM, attending "
                                   "at every word", flag="--decoder")
    embedding_dim: int = option(128, "word vector size")
    lstm_units: int = option(256, "the LSTM's state size (the paper uses 1000 on COCO)")
    attention_units: int = option(128, "the attention's hidden width")
    dropout: float = option(0.3, "before the output layer, as in the paper's code")
    positions: Literal["axes", "cells"] = option(
        "axes",
        "what is added to each annotation vector so that the context says where it came "
        "from: axes, a learned vector per grid row plus one per column (as the "
        "Transformer's); cells, a learned vector per cell (models before 0.5)",
        advanced=True)
    attention: Literal["soft", "hard"] = option(
        "soft",
        "soft: the expected context (Section 4.2); hard: one sampled cell per word (4.1)")
    score: Score = option(
        "additive",
        "the attention score; additive: Bahdanau's v^T tanh(W h + U a), the paper's")
    heads: int = option(4, "multihead: heads, of --attention-units / --heads units each")
    window: float = option(3.0, "local: D, cells each side of the predicted centre")
    window_truncate: bool = option(
        False,
        "local: attend only within D of the centre (Luong); on a grid the Gaussian alone "
        "trains far better (docs: the attention family)", advanced=True)
    # Hard attention (Section 4.1): one sampled cell per word, trained with REINFORCE.
    expected_context_rate: float = option(
        0.5,
        "share of steps given the expected context (4.1)", advanced=True)
    expected_context_draw: Literal["step", "batch"] = option(
        "step",
        "draw that choice per caption and word, or once per batch (the paper's code)",
        advanced=True)
    hard_inference: Literal["argmax", "expected"] = option(
        "argmax",
        "decoding looks at the most likely cell, or takes the expected context", advanced=True)

    def check(self):
        check_positive(self, "embedding_dim", "lstm_units", "attention_units", "heads")
        if self.attention_units % self.heads:
            raise ConfigError(f"heads must divide attention_units ({self.attention_units}). "
                              f"Received: heads={self.heads}")
        if not self.window >= 0.5:
            raise ConfigError(f"window must be >= 0.5 cells. Received: window={self.window}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        check_range(self, 0.0, 1.0, "expected_context_rate")

    default_learning_rate = 2e-3  # Adam's starting rate unless --learning-rate is given

    @property
    def hard(self):
        """Whether the decoder samples one cell per word (hard attention)."""
        return self.attention == "hard"

    def summary(self):
        """The decoder in a few words (model cards)."""
        return f"LSTM decoder with {self.attention} {self.score} attention"


@dataclasses.dataclass
class TransformerConfig(Config):
    """The Transformer decoder's architecture (``captioner.models.transformer``): the
    decoder of ``kind`` "transformer" (Vaswani et al. 2017). Each layer: causal multi-head
    self-attention over the words, multi-head cross-attention over the grid, a
    feed-forward net; the grid cells carry a 2-D position encoding."""
    title = "decoder"
    MOST = {"layers": 64, "heads": 256, "model_width": 8192, "ff_width": 65536,
            "encoder_layers": 64}
    kind: Literal["transformer"] = option(
        "transformer", "transformer: words attend to earlier words and the grid",
        flag="--decoder")
    layers: int = option(
        1,
        "decoder layers (at equal training time one captions best: docs, self-attention)")
    heads: int = option(4, "heads per layer, of --model-width / --heads units each")
    model_width: int = option(
        256, "the width of the word vectors and of every layer (Vaswani's d-model)")
    ff_width: int = option(
        1024, "the feed-forward nets' hidden width (4 x --model-width, as Vaswani)", advanced=True)
    dropout: float = option(0.1, "after every sub-layer and on the embeddings (Vaswani)")
    norm: Literal["pre", "post"] = option(
        "pre",
        "layer norm before each sub-layer (pre: trains without warm-up) or after the "
        "residual sum (post: Vaswani's)", advanced=True)
    encoder_layers: int = option(
        0,
        "self-attention layers over the grid before the decoder (0: the CNN's grid as it is)",
        advanced=True)
    attention_map: Literal["last_layer", "all_layers", "first_layer"] = option(
        "last_layer",
        "the per-word map (heat maps, supervision, attention correctness): the mean over "
        "heads of the last layer's cross-attention, of every layer's, or of the first's "
        "(docs: self-attention)", advanced=True)

    hard = False  # its attention is soft: the expected value over the grid
    # Adam's starting rate unless --learning-rate is given: on the hard synthetic set,
    # 3 epochs, 1e-3 and 5e-4 train it far better than the LSTM's 2e-3 (README)
    default_learning_rate = 1e-3

    def summary(self):
        """The decoder in a few words (model cards)."""
        grid = f", {self.encoder_layers} grid encoder layers" if self.encoder_layers else ""
        return (f"Transformer decoder, {self.layers} layers of {self.heads} heads, d_model "
                f"{self.model_width}, {self.norm}-norm{grid}; maps: {self.attention_map}")

    def check(self):
        check_positive(self, "layers", "heads", "model_width", "ff_width")
        if self.model_width % self.heads:
            raise ConfigError(f"heads must divide model_width ({self.model_width}). "
                              f"Received: heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.encoder_layers < 0:
            raise ConfigError(f"encoder_layers must be >= 0. Received: {self.encoder_layers}")


DecoderConfig = LSTMDecoderConfig  # its name in 0.4, kept for one release
DECODERS = {"lstm": LSTMDecoderConfig,  # decoder kind -> its architecture section
            "transformer": TransformerConfig}
