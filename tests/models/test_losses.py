"""The REINFORCE surrogate on a tiny categorical policy with a known expected cost."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.models.losses import cost_to_go, reinforce_surrogate

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


def one_step(model, start, x, y):
    """The gradient of ``model``'s loss w.r.t. theta at ``start``, read off one SGD step of
    learning rate 1 (plain SGD has no state, so one compiled model serves every probe)."""
    if getattr(model, "optimizer", None) is None:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    model.theta.assign(np.asarray(start, "float32"))
    model.train_on_batch(x, y)
    return np.asarray(start) - ops.convert_to_numpy(model.theta)


def surrogate_gradient(logits, choices, baseline, policy=None):
    """The gradient of the surrogate at ``logits`` for a batch of ``choices``."""
    onehot = np.eye(3, dtype="float32")[choices]
    targets = np.stack([COST[choices], np.full(len(choices), baseline)], 1).astype("float32")
    return one_step(policy or Policy(logits), logits, onehot, targets)


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
    policy = Policy(logits)
    without = np.array([surrogate_gradient(logits, b, 0.0, policy) for b in batches])
    with_baseline = np.array([surrogate_gradient(logits, b, pi @ COST, policy)
                              for b in batches])
    assert with_baseline.var(0).sum() < 0.5 * without.var(0).sum()
    # and both are unbiased: their means agree with the analytic gradient
    np.testing.assert_allclose(with_baseline.mean(0), analytic_gradient(logits), atol=0.05)


def test_cost_to_go_sums_each_word_and_the_words_after_it():
    losses = np.random.default_rng(2).random((3, 5)).astype("float32")
    expected = np.cumsum(losses[:, ::-1], axis=1)[:, ::-1]
    np.testing.assert_allclose(ops.convert_to_numpy(cost_to_go(losses)), expected, rtol=1e-6)


class TwoSteps(keras.Model):
    """Two choices in a row, pi_t(s) = softmax(theta_t)_s; the cost is COST[s_1] + COST[s_2].
    y holds the choices' costs (N, 2); credit says what each choice is judged by."""

    def __init__(self, credit):
        super().__init__()
        self.credit = credit
        self.theta = self.add_weight(shape=(2, 3), name="theta", initializer="zeros")

    def call(self, choices):  # (N, 2, 3) one-hot -> (N, 2) log pi_t(s_t)
        return ops.sum(choices * ops.log_softmax(self.theta, -1)[None], -1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.credit == "to_go":
            return reinforce_surrogate(cost_to_go(y), y_pred, 0.0)
        return reinforce_surrogate(ops.sum(y, 1), ops.sum(y_pred, 1), 0.0)


def test_cost_to_go_is_unbiased_and_lowers_the_variance_of_later_choices():
    """The second choice cannot change the first step's cost; judging it by the cost to
    go drops that noise. Gradient w.r.t. the second step's logits over 60 batches of 8."""
    rng = np.random.default_rng(3)
    batches = [rng.integers(3, size=(8, 2)) for _ in range(60)]
    gradients = {}
    for credit in ("to_go", "caption"):
        model = TwoSteps(credit)
        gradients[credit] = np.array([
            one_step(model, np.zeros((2, 3)), np.eye(3, dtype="float32")[choices],
                     COST[choices].astype("float32"))[1] for choices in batches])
    analytic = analytic_gradient(np.zeros(3))
    for credit, grads in gradients.items():
        np.testing.assert_allclose(grads.mean(0), analytic, atol=0.06)
    assert gradients["to_go"].var(0).sum() < 0.7 * gradients["caption"].var(0).sum()
