"""What model code needs to know when one training step runs as several replicas.

On JAX, ``keras.distribution.DataParallel`` runs one program over the global batch (laid
out across the devices), so a sum is already a sum over the global batch and a random draw
already covers it: every function here is the identity there, as on one device.

On TensorFlow, ``tf.distribute.MirroredStrategy`` and ``MultiWorkerMirroredStrategy`` run
the step once per replica on its slice of the global batch (replica r gets rows
``r*b .. (r+1)*b - 1`` of each global batch of ``N*b``) and sum the replicas' gradients.
A loss that is a global mean must then be each replica's share of it, its local sum over
the global count (``global_sum``), and every random draw must differ between replicas
although their seed generators are copies of one state (``draw``). With both, N replicas
compute the loss, the gradients and the random numbers of one device on the global batch.

This module imports no TensorFlow: the training loop's ``tf.distribute`` placement tells
it (``use``) how to ask the strategy.
"""

import keras

_strategy = None  # how a tf.distribute strategy is asked (captioner.training.tf_distribution)


def use(strategy):
    """Tells this module how to find the replica a step runs on and to sum over the
    replicas: an object with ``replica()``, ``sum(value)`` and ``laid_out()`` (the
    training loop's ``tf.distribute`` placement installs one). Without one, every step
    is a whole batch on one device or one SPMD program (JAX)."""
    global _strategy
    _strategy = strategy


def replica():
    """(index, count): this replica and the number of replicas in sync; (0, 1) outside a
    multi-replica ``tf.distribute`` step, and always on JAX."""
    return _strategy.replica() if _strategy is not None else (0, 1)


def global_sum(value):
    """``value`` summed over the replicas in sync (no gradient flows through the sum)."""
    value = keras.ops.stop_gradient(value)
    return value if replica()[1] == 1 else _strategy.sum(value)


def laid_out():
    """Whether the model is laid out across devices (a keras.distribution, or the scope of
    a tf.distribute strategy): ``predict_on_batch`` would then split or repeat a batch."""
    return keras.distribution.distribution() is not None or (
        _strategy is not None and _strategy.laid_out())


def tracked(value):
    """What a metric tracker records for this replica's share of a global mean: trackers
    average the replicas' values, so each records its share times the number of
    replicas."""
    return value * replica()[1]


def draw(sample, shape, seed, **kwargs):
    """``sample(shape, seed=seed, **kwargs)`` (a ``keras.random`` function) for this
    replica's rows of the global batch (``shape[0]`` is the replica's batch).

    Every replica draws the numbers of the whole global batch from the same seed state, so
    that their generators advance alike, and keeps its own rows: the replicas' draws differ,
    and together they are the draw of one device on the global batch.
    """
    index, count = replica()
    if count == 1:
        return sample(shape, seed=seed, **kwargs)
    batch = shape[0]
    drawn = sample((batch * count,) + tuple(shape[1:]), seed=seed, **kwargs)
    return drawn[index * batch:(index + 1) * batch]


def categorical(log_probabilities, seed):
    """One index per row drawn from ``softmax(log_probabilities)`` (batch, K) -> (batch,),
    by the Gumbel-max trick: argmax(log p + Gumbel noise), with the noise from ``draw``."""
    shape = keras.ops.shape(log_probabilities)
    uniform = draw(keras.random.uniform, (shape[0], shape[1]), seed, minval=1e-20, maxval=1.0)
    gumbel = -keras.ops.log(-keras.ops.log(uniform))
    return keras.ops.argmax(log_probabilities + gumbel, axis=-1)


@keras.saving.register_keras_serializable(package="captioner")
class Dropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` whose mask comes from ``draw``: each replica drops its own
    units, and N replicas drop those one device would on the global batch (Keras' dropout
    draws from the layer's seed state alone, the same mask on every replica)."""

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        keep = draw(keras.random.uniform, keras.ops.shape(inputs), self.seed_generator) \
            >= self.rate
        return keras.ops.where(keep, inputs / (1.0 - self.rate), keras.ops.zeros_like(inputs))
