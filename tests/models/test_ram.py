"""The Recurrent Attention Model: the retina against NumPy slices, where the gradients go,
that REINFORCE moves the policy toward reward, overfitting, and save/load."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.config import RAMConfig
from captioner.layers.glimpse import glimpse_patches
from captioner.models.losses import reinforce_surrogate
from captioner.models.ram import create_ram
from captioner.training.loop import reseed_layers
from tests.helpers import load_model, save_model

pytestmark = pytest.mark.backend


def small_config(**overrides):
    return RAMConfig(**{"height": 16, "width": 24, "channels": 1, "classes": 3,
                        "glimpses": 3, "patch": 4, "scales": 2, "glimpse_hidden": 16,
                        "glimpse_units": 32, "core_units": 32, "seed": 1,
                        "first_glimpse": "centre", **overrides})


def test_patch_at_a_known_location_is_the_numpy_slice(rng):
    images = rng.random((2, 20, 30, 3)).astype("float32")
    # (row, col) pixel centre (10, 15) is location (0, 0); (4, 6) is (-0.6, -0.6)
    locations = np.array([[0.0, 0.0], [-0.6, -0.6]], "float32")
    patches = ops.convert_to_numpy(glimpse_patches(images, locations, 4, 1))
    np.testing.assert_array_equal(patches[0, 0], images[0, 8:12, 13:17])
    # -0.6 is not exact in binary: the centre is 4 + 1e-7, interpolated as such
    np.testing.assert_allclose(patches[1, 0], images[1, 2:6, 4:8], atol=1e-5)


def test_patches_at_the_border_are_zero_padded_and_scales_nest(rng):
    images = rng.random((1, 20, 30, 2)).astype("float32")
    padded = np.zeros((1, 60, 70, 2), "float32")
    padded[:, 20:40, 20:50] = images
    corner = np.array([[-1.0, -1.0]], "float32")  # pixel corner (0, 0)
    patches = ops.convert_to_numpy(glimpse_patches(images, corner, 4, 3))
    assert patches.shape == (1, 3, 4, 4, 2)
    for scale in range(3):
        side, factor = 4 * 2 ** scale, 2 ** scale
        window = padded[0, 20 - side // 2:20 + side // 2, 20 - side // 2:20 + side // 2]
        expected = window.reshape(4, factor, 4, factor, 2).mean((1, 3))
        np.testing.assert_allclose(patches[0, scale], expected, atol=1e-6)
    # scale i + 1 covers scale i: its central half, averaged, is scale i averaged 2x2
    inner = patches[0, 1, 1:3, 1:3]
    np.testing.assert_allclose(inner, patches[0, 0].reshape(2, 2, 2, 2, 2).mean((1, 3)),
                               atol=1e-6)


def test_non_square_images_map_each_axis_by_its_own_side(rng):
    images = rng.random((1, 16, 40, 1)).astype("float32")
    # location (0.5, -0.5): row 12 of 16, column 10 of 40
    patch = ops.convert_to_numpy(glimpse_patches(images, np.array([[0.5, -0.5]], "float32"), 2, 1))
    np.testing.assert_array_equal(patch[0, 0], images[0, 11:13, 9:11])


def gradient_of(model, loss_fn, images, labels):
    """d loss / d trainable weights, on either backend (training-mode call, fixed seed)."""
    if keras.backend.backend() == "jax":
        import jax
        trainable = [v.value for v in model.trainable_variables]
        others = [v.value for v in model.non_trainable_variables]

        def loss_of(values):
            outputs, _ = model.stateless_call(values, others, images, training=True)
            return loss_fn(outputs, labels)
        return jax.grad(loss_of)(trainable)
    import tensorflow as tf
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = loss_fn(outputs, labels)
    return tape.gradient(loss, model.trainable_variables)


def cross_entropy(outputs, labels):
    return ops.mean(ops.sparse_categorical_crossentropy(labels, outputs["logits"],
                                                        from_logits=True))


def policy_term(outputs, labels):
    reward = ops.cast(ops.argmax(outputs["logits"], -1) == labels, "float32")
    rewards = ops.broadcast_to(reward[:, None], ops.shape(outputs["baselines"]))
    return reinforce_surrogate(-rewards, outputs["log_policy"], -0.5)


def test_classification_sends_the_location_network_no_gradient(rng):
    model = create_ram(small_config(), seed=0)
    images = rng.random((8, 16, 24, 1)).astype("float32")
    labels = np.arange(8) % 3
    names = [v.path for v in model.trainable_variables]
    for loss_fn, reaches in ((cross_entropy, False), (policy_term, True)):
        reseed_layers(model, seed=3, epoch=0)
        grads = gradient_of(model, loss_fn, images, labels)
        for name, grad in zip(names, grads):
            norm = 0.0 if grad is None else float(np.abs(ops.convert_to_numpy(grad)).sum())
            if "location" in name:
                assert (norm > 0) == reaches, (loss_fn.__name__, name)
            elif loss_fn is policy_term:  # the policy term trains the location network only
                assert norm == 0, name
    grads = gradient_of(model, cross_entropy, images, labels)
    classifier = [g for n, g in zip(names, grads) if "classifier" in n or "glimpse" in n]
    assert all(float(np.abs(ops.convert_to_numpy(g)).sum()) > 0 for g in classifier)


@pytest.mark.parametrize("reward", ["correct", "log_likelihood"])
def test_the_loss_is_cross_entropy_reinforce_and_baseline_error(rng, reward):
    model = create_ram(small_config(reward=reward), seed=0)
    images = rng.random((8, 16, 24, 1)).astype("float32")
    labels = np.arange(8) % 3
    outputs = model(images, training=True)
    loss = float(ops.convert_to_numpy(model.compute_loss(y=labels, y_pred=outputs)))
    logits, log_policy, baselines = (ops.convert_to_numpy(outputs[k]).astype("float64")
                                     for k in ("logits", "log_policy", "baselines"))
    shifted = logits - logits.max(-1, keepdims=True)
    log_likelihood = (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))[np.arange(8),
                                                                                labels]
    correct = (logits.argmax(-1) == labels).astype("float64")
    rewards = (correct if reward == "correct" else log_likelihood)[:, None]
    expected = (-log_likelihood.mean() + ((baselines - rewards) * log_policy).sum() / 8
                + ((baselines - rewards) ** 2).mean())
    assert loss == pytest.approx(expected, rel=1e-4)
    with pytest.raises(Exception, match="reward"):
        small_config(reward="accuracy")


class GaussianPolicy(keras.Model):
    """A location policy alone: mu = tanh(theta), l ~ N(mu, sigma^2); reward 1 when l lands
    in the rewarded quarter (row > 0.3)."""

    def __init__(self):
        super().__init__()
        self.theta = self.add_weight(shape=(2,), initializer="zeros", name="theta")
        self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, x, training=False):
        mean = ops.broadcast_to(ops.tanh(self.theta)[None], (ops.shape(x)[0], 2))
        location = ops.stop_gradient(mean + 0.3 * keras.random.normal(ops.shape(mean),
                                                                      seed=self.seed_generator))
        log_policy = -ops.sum(ops.square(location - mean), -1) / (2 * 0.3 ** 2)
        return {"location": location, "log_policy": log_policy}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reward = ops.cast(y_pred["location"][:, 0] > 0.3, "float32")
        return reinforce_surrogate(-reward, y_pred["log_policy"], -ops.mean(reward))


def test_reinforce_moves_the_location_toward_the_reward():
    policy = GaussianPolicy()
    policy.compile(optimizer=keras.optimizers.SGD(0.5))
    x = np.zeros((256, 1), "float32")
    policy.fit(x, np.zeros(256), batch_size=256, epochs=30, verbose=0)
    theta = ops.convert_to_numpy(policy.theta)
    assert np.tanh(theta[0]) > 0.3  # the mean moved into the rewarded rows
    assert abs(np.tanh(theta[1])) < abs(np.tanh(theta[0]))  # the column did not matter


def tiny_batch(rng, count=12):
    """Each class is a bright square in its own place of the canvas."""
    images = np.zeros((count, 16, 24, 1), "float32")
    labels = np.arange(count) % 3
    for image, label in zip(images, labels):
        row, col = [(2, 2), (8, 10), (3, 16)][label]
        image[row:row + 5, col:col + 5, 0] = 1.0
    return images + 0.05 * rng.random(images.shape).astype("float32"), labels


def test_a_tiny_ram_overfits_a_tiny_batch(rng):
    model = create_ram(small_config(), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    images, labels = tiny_batch(rng)
    model.fit(images, labels, batch_size=12, epochs=60, verbose=0)
    predicted = ops.convert_to_numpy(model(images)["logits"]).argmax(-1)
    assert (predicted == labels).all()


def test_save_load_gives_the_same_answers_and_glimpse_paths(rng, tmp_path):
    model = create_ram(small_config(first_glimpse="random"), seed=0)
    images, _ = tiny_batch(rng)
    save_model(str(tmp_path / "ram"), model, ["a", "b", "c"])
    saved = load_model(str(tmp_path / "ram"))
    loaded = saved.model
    assert saved.classes == ["a", "b", "c"] and saved.kind == "ram"
    for key in ("logits", "locations", "patches"):
        np.testing.assert_allclose(ops.convert_to_numpy(loaded(images)[key]),
                                   ops.convert_to_numpy(model(images)[key]), atol=1e-6)
    paths = []
    for ram in (model, loaded):  # sampled paths: the same seed, the same samples
        reseed_layers(ram, seed=4, epoch=0)
        paths.append(ops.convert_to_numpy(ram(images, training=True)["locations"]))
    np.testing.assert_array_equal(paths[0], paths[1])
    assert np.abs(paths[0][:, 0]).max() > 0  # training starts at random places
    locations = ops.convert_to_numpy(model(images)["locations"])
    assert np.abs(paths[0][:, 1:] - locations[:, 1:]).max() > 0
