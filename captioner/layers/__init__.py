"""Reusable Keras layers: the attention family over a spatial feature grid."""

from captioner.layers.attention import AdditiveAttention, GridAttention, get_attention

__all__ = ["AdditiveAttention", "GridAttention", "get_attention"]
