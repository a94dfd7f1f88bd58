"""The captioner: encoder + decoder as one saveable Keras model, with its loss.

The model records the vocabulary's size and hash, so a ``vocab.json`` from another model is
refused before anything is decoded (``captioner.saving`` writes and reads model folders).
"""

import keras
from keras import ops

from captioner.config import ModelConfig
from captioner.errors import ModelError
from captioner.models import replicas
from captioner.models.base import ConfiguredModel
from captioner.models.decoder import LSTMDecoder
from captioner.models.encoder import Encoder, build_backbone
from captioner.models.grounding import GroundingHead, cell_loss, grounding_loss, labelled_pairs
from captioner.models.losses import (
    cost_to_go,
    doubly_stochastic_penalty,
    outside_attention,
    reinforce_surrogate,
    token_losses,
)
from captioner.models.transformer import TransformerDecoder

DECODER_LAYERS = {"lstm": LSTMDecoder, "transformer": TransformerDecoder}  # by kind


@keras.saving.register_keras_serializable(package="captioner")
class Captioner(ConfiguredModel):
    """Show, Attend and Tell: images and caption prefixes -> next-word logits and attention.

    Args:
        config: a ``ModelConfig`` as a dict (what ``ModelConfig.to_dict()`` returns).

    Call arguments:
        inputs: {"images": uint8 (batch, S, S, 3) from ``load_resized``, or float from
                 ``preprocess_image``,
                 "tokens": int (batch, T), <start> then the caption}; "features"
                 (batch, H*W, D), the encoder's output, may replace "images".

    Returns:
        {"logits": (batch, T, V), "alphas": (batch, T, H*W)}, with hard attention in
        training "log_policy" and "entropy" (batch, T) (see ``LSTMDecoder``), and
        with a grounding head (``ModelConfig.grounding``) "grounding" (batch, T, C), its
        logits of what is at each word's attended place (``GroundingHead``).

    Training minimises the masked cross-entropy plus lambda times the doubly stochastic
    penalty (``compute_loss``); ``fit()`` drives it on every backend.

    Self-critical training (``captioner.training.scst``) gives inputs {"images" or
    "features" (batch, ...), "tokens" (batch * K, T): K sampled captions per image,
    "advantage" (batch * K,): each one's reward minus its image's greedy caption's}: the
    captions are read as they were sampled (no dropout, attention as in decoding), and the
    loss is the REINFORCE surrogate of the reward (``compute_loss``).
    """

    kind, config_class = "captioner", ModelConfig

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        encoder, decoder = self.model_config.encoder, self.model_config.decoder
        if self.model_config.vocab_size < 5:
            raise ModelError("vocab_size must be at least 5. "
                             f"Received: {self.model_config.vocab_size}")
        self.encoder = Encoder(encoder.backbone, encoder.image_size, encoder.width,
                               encoder.fine_tune, name="encoder")
        self.decoder = DECODER_LAYERS[decoder.kind](
            self.model_config.vocab_size, self.encoder.grid_shape, decoder, name="decoder")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.grounding = None
        if self.model_config.grounding.enabled:
            self.grounding = GroundingHead(self.model_config.vocab_size,
                                           self.model_config.grounding, name="grounding")
        if decoder.hard:
            # b of the REINFORCE term: a moving average of the cost (see _reinforce_terms);
            # saved with the model, so a resumed run continues with it.
            # Replicas assign it the same value; "mean" lets them assign in a step.
            self.baseline = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            aggregation="mean", name="reinforce_baseline")

    @property
    def grid_shape(self):
        return self.encoder.grid_shape

    def encode(self, images, training=False):
        """Images -> annotation vectors (batch, L = H * W, D)."""
        grid = self.encoder(images, training=training)  # (batch, H, W, D)
        return ops.reshape(grid, (ops.shape(grid)[0], -1, self.encoder.feature_dim))

    def call(self, inputs, training=False):
        self_critical = "advantage" in inputs
        if self_critical:  # the policy that sampled the captions: the decoding one
            training = False
        if "features" in inputs:  # a frozen encoder's output, read from a FeatureCache
            features = inputs["features"]
        else:
            features = self.encode(inputs["images"], training=training)
        tokens = inputs["tokens"]
        if self_critical:  # K captions per image
            features = ops.repeat(features, ops.shape(tokens)[0] // ops.shape(features)[0],
                                  axis=0)
        outputs = self.decoder(tokens, features, training=training)
        if self.grounding is not None:
            outputs = {**outputs, "grounding": self.grounding(outputs["alphas"], features)}
            if training and self.grounding.objectness is not None:
                outputs["cells"] = self.grounding.cell_logits(features)
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Cross-entropy + lambda * doubly stochastic penalty; where the batch carries
        x["regions"] (``captioner.data.regions``) also lambda_s * the attention mass outside
        the named objects' boxes (``attention_supervision``); where it carries x["objects"]
        and the model has a grounding head, lambda_g * the head's cross-entropy at the
        named words (``grounding``), and where it carries x["cells"] too, lambda_g * the
        head's loss of reading each cell (``cell_loss``); with hard attention in
        training also lambda_r * REINFORCE surrogate - lambda_e * entropy (Section 4.1),
        each normalised per word like the cross-entropy, and the baseline update. A
        self-critical batch (x["advantage"]) replaces cross-entropy and penalty by the
        REINFORCE surrogate of its captions' advantages.

        Every mean is over the global batch: under ``tf.distribute`` each replica returns
        its share (its sum over the global batch's count, ``replicas.global_sum``), and the
        shares add up to one device's loss."""
        config = self.model_config.loss
        mask = ops.cast(sample_weight, "float32")
        words = ops.maximum(replicas.global_sum(ops.sum(mask)), 1.0)
        losses = token_losses(y, y_pred["logits"], mask)  # (batch, T)
        nll = ops.sum(losses) / words
        self.nll_tracker.update_state(replicas.tracked(nll))
        rows = ops.cast(ops.sum(mask, axis=1) > 0, "float32")  # not the filler rows
        captions = ops.maximum(replicas.global_sum(ops.sum(rows)), 1.0)  # in the global batch
        supervised = isinstance(x, dict) and "regions" in x and bool(config.attention_supervision)
        if isinstance(x, dict) and "advantage" in x:
            # Rennie et al. 2017: -(r(w^s) - r(w^greedy)) log p(w^s), per word as the
            # cross-entropy: REINFORCE with cost -reward and the greedy caption's as b
            advantage = ops.cast(x["advantage"], "float32")
            loss = reinforce_surrogate(-advantage, -ops.sum(losses, axis=1), 0.0,
                                       normaliser=words)
        else:
            penalty = doubly_stochastic_penalty(y_pred["alphas"], mask, normaliser=captions)
            loss = nll + config.doubly_stochastic * penalty
        if supervised:
            regions = ops.cast(x["regions"], y_pred["alphas"].dtype)
            named = ops.cast(ops.sum(regions, axis=-1) > 0, "float32") * mask
            loss = loss + config.attention_supervision * outside_attention(
                y_pred["alphas"], regions, mask,
                normaliser=ops.maximum(replicas.global_sum(ops.sum(named)), 1.0))
        if "grounding" in y_pred and isinstance(x, dict) and "objects" in x \
                and config.grounding:
            labels = ops.cast(x["objects"], "int32")
            loss = loss + config.grounding * grounding_loss(
                y_pred["grounding"], labels, mask, self.grounding.sizes,
                normaliser=ops.maximum(replicas.global_sum(labelled_pairs(labels, mask)), 1.0))
            if "cells" in y_pred and "cells" in x:
                cells = ops.cast(ops.shape(x["cells"])[1], "float32")
                loss = loss + config.grounding * cell_loss(
                    y_pred["cells"], x["cells"], rows, self.grounding.sizes,
                    normaliser=ops.maximum(replicas.global_sum(ops.sum(rows)) * cells, 1.0))
        if "log_policy" in y_pred:
            loss = loss + self._reinforce_terms(losses, mask, rows, captions, words, y_pred,
                                                training)
        return loss

    def _reinforce_terms(self, losses, mask, rows, captions, words, y_pred, training):
        """lambda_r * REINFORCE surrogate - lambda_e * entropy, and the baseline update.

        credit "caption" (the paper): every sampled cell of a caption is judged by the
        caption's cost -log p(y | s), against b, a moving average of that cost.
        credit "to_go": the cell sampled at word t is judged by the cost of words t..T,
        against b times the number of those words, b a moving average of the cost per word.
        The observed cost that moves b is the global batch's, the same on every replica.
        """
        config = self.model_config.loss
        log_policy = y_pred["log_policy"] * mask  # (batch, T), 0 where no cell was sampled
        if config.credit == "caption":
            cost = ops.sum(losses, axis=1)  # (batch,)
            log_policy = ops.sum(log_policy, axis=1)
            baseline = self.baseline
            observed = replicas.global_sum(ops.sum(cost * rows)) / captions
        else:
            cost = cost_to_go(losses)  # (batch, T)
            baseline = self.baseline * cost_to_go(mask)  # b per word x the words to go
            observed = replicas.global_sum(ops.sum(losses)) / words
        entropy = ops.sum(y_pred["entropy"] * mask) / words
        if training:
            decay = config.baseline_decay
            self.baseline.assign(decay * self.baseline
                                 + (1.0 - decay) * ops.stop_gradient(observed))
        return (config.reward_weight * reinforce_surrogate(cost, log_policy, baseline,
                                                           normaliser=words)
                - config.entropy_weight * entropy)

    def build_by_calling(self):
        """Creates every weight by running one tiny batch (used on creation and on load)."""
        size = self.model_config.encoder.image_size
        self({"images": ops.zeros((1, size, size, 3)), "tokens": ops.zeros((1, 2), "int32")})


def create_captioner(config, weights=None, seed=None):
    """A new, built Captioner. ``weights``: None, "none", "imagenet" or a weights file,
    loaded into the backbone."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = Captioner(config.to_dict())
    if weights not in (None, "none"):
        encoder = config.encoder
        source = build_backbone(encoder.backbone, encoder.image_size, encoder.width, weights)
        model.encoder.backbone.set_weights(source.get_weights())
    model.build_by_calling()
    return model
