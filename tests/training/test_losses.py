"""The REINFORCE surrogate on a tiny categorical policy with a known expected cost."""

import numpy as np
import pytest

import keras
from keras import ops

from captioner.training.losses import reinforce_surrogate

pytestmark = pytest.mark.backend

COST = np.array([0.0, 1.0, 1.0])  # choice 0 is the rewarding one


class Policy(keras.Model):
    """pi(s) = softmax(theta)_s; the call gives log pi of the one-hot choices."""

    def __init__(self, logits):
        super().__init__()
        self.theta = self.add_weight(shape=(3,), name="theta",
                                     initializer=keras.initializers.Constant(logits))

    def call(self, choices):
        return ops.sum(choices * ops.log_softmax(self.theta)[None, :], -1)  # (N,)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return reinforce_surrogate(y[:, 0], y_pred, y[0, 1])


def surrogate_gradient(logits, choices, baseline):
    """The gradient of the surrogate, read off one SGD step with learning rate 1."""
    policy = Policy(logits)
    policy.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    onehot = np.eye(3, dtype="float32")[choices]
    targets = np.stack([COST[choices], np.full(len(choices), baseline)], 1).astype("float32")
    policy.fit(onehot, targets, batch_size=len(choices), epochs=1, shuffle=False, verbose=0)
    return np.asarray(logits) - ops.convert_to_numpy(policy.theta)


def analytic_gradient(logits):
    """d/d theta of E_pi[cost] = sum_k pi_k cost_k: pi_k (cost_k - E[cost])."""
    pi = np.exp(logits) / np.exp(logits).sum()
    return pi * (COST - pi @ COST)


@pytest.mark.parametrize("baseline", [0.0, 0.5])
def test_surrogate_gradient_is_the_gradient_of_the_expected_cost(baseline):
    logits = np.array([0.2, -0.3, 0.1])
    pi = np.exp(logits) / np.exp(logits).sum()
    choices = np.random.default_rng(0).choice(3, size=40_000, p=pi)
    estimate = surrogate_gradient(logits, choices, baseline)
    # Monte Carlo: the standard error of each component is below 0.003 for 40,000 samples
    np.testing.assert_allclose(estimate, analytic_gradient(logits), atol=0.012)
    assert estimate[0] < 0  # descent raises the rewarding choice's logit ...
    assert np.argmin(estimate) == 0  # ... more than any other


def test_a_baseline_lowers_the_variance_of_the_estimate():
    logits = np.array([0.2, -0.3, 0.1])
    pi = np.exp(logits) / np.exp(logits).sum()
    rng = np.random.default_rng(1)
    batches = [rng.choice(3, size=8, p=pi) for _ in range(60)]
    without = np.array([surrogate_gradient(logits, b, 0.0) for b in batches])
    with_baseline = np.array([surrogate_gradient(logits, b, pi @ COST) for b in batches])
    assert with_baseline.var(0).sum() < 0.5 * without.var(0).sum()
    # and both are unbiased: their means agree with the analytic gradient
    np.testing.assert_allclose(with_baseline.mean(0), analytic_gradient(logits), atol=0.05)
