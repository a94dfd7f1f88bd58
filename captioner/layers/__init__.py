"""Reusable Keras layers: the attention family over a spatial feature grid."""

from captioner.layers.attention import (
                                        ATTENTION_LAYERS,
                                        AdditiveAttention,
                                        ConcatAttention,
                                        DotAttention,
                                        GeneralAttention,
                                        GridAttention,
                                        LocalAttention,
                                        MultiHeadGridAttention,
                                        ScaledDotAttention,
                                        get_attention,
)

__all__ = ["ATTENTION_LAYERS", "AdditiveAttention", "ConcatAttention", "DotAttention",
           "GeneralAttention", "GridAttention", "LocalAttention", "MultiHeadGridAttention",
           "ScaledDotAttention", "get_attention"]
