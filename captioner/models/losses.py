"""The loss terms of Show, Attend and Tell, as plain functions of tensors (any backend).

- ``token_losses``: the cross-entropy of each word of the captions, 0 on padding.
- ``doubly_stochastic_penalty``: eq. 14, each cell's attention summed over words near 1.
- ``reinforce_surrogate``: the REINFORCE term of hard attention (eq. 12), written so that
  the ordinary gradient of the surrogate is the REINFORCE estimate. No per-backend
  training loop is needed: ``fit()`` differentiates it like any other loss.
- ``cost_to_go``: the cost of each word and the words after it, the part of a caption's
  cost that the choice made at that word can still change.
"""

from keras import ops


def token_losses(targets, logits, mask):
    """-log p(word) per position, 0 on padding: (batch, T), in float32 whatever the logits'
    dtype (mixed precision)."""
    losses = ops.sparse_categorical_crossentropy(targets, ops.cast(logits, "float32"),
                                                 from_logits=True)
    return losses * mask


def doubly_stochastic_penalty(alphas, mask, normaliser=None):
    """Xu et al. eq. 14: mean over images and cells of (1 - sum_t alpha_tl)^2.

    alphas (batch, T, L), mask (batch, T): padded steps contribute no attention, and rows
    without a word (the filler of a last batch) do not count. ``normaliser``: divide the
    sum over images by this instead of the number of rows with words (a replica divides
    by the global batch's).
    """
    alphas = ops.cast(alphas, "float32")
    attention_per_cell = ops.sum(alphas * mask[:, :, None], axis=1)  # (batch, L)
    rows = ops.cast(ops.sum(mask, axis=1) > 0, alphas.dtype)  # (batch,)
    per_row = ops.mean(ops.square(1.0 - attention_per_cell), axis=1)
    if normaliser is None:
        normaliser = ops.sum(rows)
    return ops.sum(per_row * rows) / ops.maximum(normaliser, 1.0)


def outside_attention(alphas, regions, mask, normaliser=None):
    """Attention supervision (Liu et al. 2017) with boxes: the mean, over the words that
    name an annotated object, of the attention mass outside its box, 1 - sum_l alpha_tl
    r_tl, r_tl the share of cell l the box covers (``captioner.data.regions``).

    alphas, regions (batch, T, L); mask (batch, T). A word is supervised where its row of
    ``regions`` is not all zero and its mask is not 0. ``normaliser``: divide by this
    instead of the number of supervised words (a replica divides by the global batch's).
    """
    alphas = ops.cast(alphas, "float32")
    named = ops.cast(ops.sum(regions, axis=-1) > 0, alphas.dtype) * mask  # (batch, T)
    inside = ops.sum(alphas * regions, axis=-1)
    if normaliser is None:
        normaliser = ops.sum(named)
    return ops.sum(named * (1.0 - inside)) / ops.maximum(normaliser, 1.0)


def reinforce_surrogate(cost, log_policy, baseline, normaliser=None):
    """mean_i stop_gradient(cost_i - baseline_i) * log_policy_i.

    Its gradient is (cost - b) * grad log p(s), the REINFORCE estimate of the gradient of
    the expected cost; descending it makes a choice that led to a cost above the baseline
    less likely, one below it more likely. The baseline leaves the estimate unbiased
    (E[grad log p(s)] = 0) and lowers its variance.

    Args:
        cost: (batch,) the cost of each sample (for captions: -log p(caption | choices)),
            or (batch, T), one cost per choice (e.g. ``cost_to_go``).
        log_policy: log-probability of the sample's choices, shaped like ``cost``
            ((batch,): summed over steps; 0 where nothing was chosen).
        baseline: a scalar (e.g. a moving average of the cost) or an array that
            broadcasts to ``cost``.
        normaliser: divide the sum by this instead of the batch size (the captioner uses
            the number of words, to match its per-word cross-entropy).
    """
    advantage = ops.stop_gradient(cost - baseline)
    total = ops.sum(advantage * log_policy)
    if normaliser is None:
        normaliser = ops.cast(ops.shape(cost)[0], cost.dtype)
    return total / normaliser


def cost_to_go(losses):
    """(batch, T) -> (batch, T): sum_{u >= t} losses[:, u].

    Used as the cost of the cell sampled at word t, it leaves the REINFORCE estimate
    unbiased (the words before t do not depend on that choice, so their cost only adds
    noise) and lowers its variance: each cell answers for the words it can still affect,
    not for the whole caption.
    """
    return ops.flip(ops.cumsum(ops.flip(losses, 1), axis=1), 1)
