"""The Recurrent Attention Model (Mnih et al. 2014): classify an image from a few glimpses.

Per glimpse t = 1..N, from location l_t ((row, column) in [-1, 1]^2; l_1 is the centre, or
in training a uniformly random place (``first_glimpse="random"``, the default: starting
where the object is not, the policy has to learn to find it; from a fixed centre whose
widest patch already shows the digit, the later locations hardly change the reward and the
policy drifted off to a corner; a single glimpse has no path to learn and always starts at
the centre):
    g_t = GlimpseNetwork(x, l_t)                 what the retina sees there, and where
    h_t = LSTM(g_t, h_{t-1})                     the recurrent core
    mu_t = tanh(W_l stop_gradient(h_t))          the location network: the policy's mean
    l_{t+1} ~ N(mu_t, sigma^2), clipped to [-1, 1]   (training; mu_t itself at inference)
    b_t = W_b stop_gradient(h_t)                 the baseline network
and after the last glimpse, class scores W_c h_N.

Training (``compute_loss``) adds three terms:
    cross-entropy of the class scores                      trains glimpse net, core, classifier
    REINFORCE: sum_t stop_gradient(b_t - R) log N(l_{t+1}; mu_t, sigma^2)
                                                          trains the location network
    (b_t - R)^2                                            trains the baseline network
with R = 1 for a correct answer, else 0 (``reward="correct"``, the paper's), or R = log p(true
class) (``reward="log_likelihood"``: in the variational bound of Ba et al. 2015, "Multiple
Object Recognition with Visual Attention", log p(y | l, x) is what weighs grad log p(l); it
also credits a location that makes a right answer surer, where the 0/1 reward is silent
once most answers are right). The sampled locations are constants
(stop_gradient) wherever they are used, so the cross-entropy sends the location network
no gradient: a location is a decision, and only its reward can teach it (the bug in several
public RAMs is to let the classification loss move it through the retina's interpolation).
The location and baseline networks read h_t through stop_gradient, so the policy and
baseline terms train only their own networks; the core learns from the cross-entropy.
As a surrogate loss, the same ``fit()`` trains it on TensorFlow and JAX.
"""

import keras
from keras import ops

from captioner.config import RAMConfig
from captioner.layers.glimpse import GlimpseNetwork
from captioner.models import replicas
from captioner.models.base import ConfiguredModel
from captioner.models.losses import reinforce_surrogate


@keras.saving.register_keras_serializable(package="captioner")
class RecurrentAttentionModel(ConfiguredModel):
    """See the module docstring. ``config``: a RAMConfig or its dict.

    Call: images (batch, H, W, C) in [0, 1] -> {"logits" (batch, classes), "locations"
    (batch, N, 2), "patches" (batch, N, k, g, g, C), "log_policy" (batch, N - 1),
    "baselines" (batch, N - 1)}.
    """

    kind, config_class = "ram", RAMConfig

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        self.glimpse = GlimpseNetwork(c.patch, c.scales, c.glimpse_hidden, c.glimpse_units,
                                      name="glimpse")
        self.core = keras.layers.LSTMCell(c.core_units, name="core")
        self.location = keras.layers.Dense(2, activation="tanh", name="location")
        self.baseline = keras.layers.Dense(1, name="baseline")
        self.classifier = keras.layers.Dense(c.classes, name="classifier")
        self.seed_generator = keras.random.SeedGenerator(c.seed, name="location_seed")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.baseline_tracker = keras.metrics.Mean(name="baseline_error")

    def build(self, images_shape):
        batch = images_shape[0]
        self.glimpse.build(images_shape, (batch, 2))
        self.core.build((batch, self.model_config.glimpse_units))
        for layer in (self.location, self.baseline, self.classifier):
            layer.build((batch, self.model_config.core_units))

    def call(self, images, training=False):
        c = self.model_config
        images = ops.convert_to_tensor(images)
        batch = ops.shape(images)[0]
        location = ops.zeros((batch, 2))  # the centre
        if training and c.first_glimpse == "random" and c.glimpses > 1:
            location = replicas.draw(keras.random.uniform, (batch, 2), self.seed_generator,
                                     minval=-1.0, maxval=1.0)
        state = [ops.zeros((batch, c.core_units)), ops.zeros((batch, c.core_units))]
        locations, patches, log_policy, baselines = [], [], [], []
        for t in range(c.glimpses):
            glimpse, seen = self.glimpse(images, location)
            locations.append(location)
            patches.append(seen)
            hidden, state = self.core(glimpse, state, training=training)
            if t == c.glimpses - 1:
                break
            features = ops.stop_gradient(hidden)
            mean = self.location(features)  # (batch, 2), in [-1, 1]
            baselines.append(ops.squeeze(self.baseline(features), -1))
            if training:
                noise = replicas.draw(keras.random.normal, (batch, 2), self.seed_generator,
                                      stddev=c.location_std)
                location = ops.stop_gradient(ops.clip(mean + noise, -1.0, 1.0))
            else:
                location = ops.stop_gradient(mean)
            # log N(l; mu, sigma^2) up to a constant: only its gradient w.r.t. mu is used
            log_policy.append(-ops.sum(ops.square(location - mean), -1)
                              / (2.0 * c.location_std ** 2))
        steps = ops.zeros((batch, 0))
        return {"logits": self.classifier(hidden),
                "locations": ops.stack(locations, 1),
                "patches": ops.stack(patches, 1),
                "log_policy": ops.stack(log_policy, 1) if log_policy else steps,
                "baselines": ops.stack(baselines, 1) if baselines else steps}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Means over the images of the global batch (each replica's share of them under
        ``tf.distribute``); ``sample_weight`` 0 marks the filler rows of a last batch."""
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        logits = y_pred["logits"]
        rows = ops.ones_like(labels, "float32") if sample_weight is None \
            else ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        images = ops.maximum(replicas.global_sum(ops.sum(rows)), 1.0)  # of the global batch
        log_likelihood = -ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        cross_entropy = -ops.sum(log_likelihood * rows) / images
        correct = ops.cast(ops.argmax(logits, -1) == labels, "float32")  # (batch,)
        self.accuracy_tracker.update_state(replicas.tracked(ops.sum(correct * rows) / images))
        reward = correct if self.model_config.reward == "correct" \
            else ops.stop_gradient(log_likelihood)
        baselines = y_pred["baselines"]  # (batch, N - 1)
        rewards = ops.broadcast_to(reward[:, None], ops.shape(baselines))
        # cost = -R, baseline -b: the surrogate's gradient is -(R - b) grad log pi
        policy = reinforce_surrogate(-rewards, y_pred["log_policy"] * rows[:, None],
                                     -ops.stop_gradient(baselines), normaliser=images)
        steps = self.model_config.glimpses - 1
        baseline_error = ops.sum(ops.square(baselines - rewards) * rows[:, None]) \
            / (images * steps) if steps else 0.0
        self.baseline_tracker.update_state(replicas.tracked(baseline_error))
        return cross_entropy + self.model_config.reinforce_weight * policy + baseline_error

    @property
    def metrics(self):
        return super().metrics + [self.accuracy_tracker, self.baseline_tracker]

    def build_by_calling(self):
        c = self.model_config
        self(ops.zeros((1, c.height, c.width, c.channels)))


def create_ram(config, seed=None):
    """A built RAM; ``seed`` fixes its initial weights."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = RecurrentAttentionModel(config)
    model.build_by_calling()
    return model


def conv_baseline(height, width, channels, classes):
    """A two-layer convolutional network that sees the whole image, of about a RAM's size
    (the comparison of Mnih et al. 2014, Table 1); logits out."""
    return keras.Sequential([
        keras.Input((height, width, channels)),
        keras.layers.Conv2D(32, 5, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 5, strides=2, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(classes),
    ], name="conv_baseline")
