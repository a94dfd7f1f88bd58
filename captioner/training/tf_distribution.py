"""``tf.distribute`` for the training loop (TensorFlow only: imported where a placement
runs on a ``MirroredStrategy``, see ``captioner.training.distribution``).

- ``mirrored_strategy(devices)``: one strategy per set of devices and process, and
  ``captioner.models.replicas`` told how to find its replica and all-reduce a sum.
- ``synchronize_batch_statistics(model)``: batch normalisation over the global batch.
- ``as_dataset(data)``: a ``tf.data.Dataset`` the strategy can split among its replicas.
"""

import keras
import numpy as np
import tensorflow as tf

from captioner.models import replicas

_STRATEGIES = {}  # one MirroredStrategy per set of devices (see mirrored_strategy)


class MirroredReplicas:
    """What ``captioner.models.replicas`` asks of a ``tf.distribute`` strategy."""

    def replica(self):
        """(index, count) of the replica this step runs on; (0, 1) outside a
        multi-replica step."""
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return 0, 1
        return context.replica_id_in_sync_group, context.num_replicas_in_sync

    def sum(self, value):
        """``value`` summed over the replicas in sync."""
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)

    def laid_out(self):
        """Whether code runs in a strategy's scope."""
        return tf.distribute.has_strategy()


def logical_devices():
    """The GPUs, or the logical CPU devices where there is no GPU."""
    return tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")


def mirrored_strategy(devices):
    """The ``MirroredStrategy`` over ``devices`` (logical devices), made once per process:
    a second strategy over the same devices would number its collective operations like
    the first, and their all-reduces would collide."""
    names = tuple(device.name for device in devices)
    if names not in _STRATEGIES:
        _STRATEGIES[names] = tf.distribute.MirroredStrategy(list(names))
    replicas.use(MirroredReplicas())
    return _STRATEGIES[names]


def synchronize_batch_statistics(model):
    """Makes the batch normalisation layers of ``model`` normalise with the global batch's
    statistics, as one device does (Keras' default under ``tf.distribute`` is each
    replica's own)."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


WORD_KEYS = ("tokens", "regions", "objects")  # x's arrays with a time axis


def as_dataset(data):
    """``data`` (a ``tf.data.Dataset`` or a PyDataset) as a ``tf.data.Dataset`` whose
    batches have a known size and count.

    A PyDataset's batches are taken apart and batched again, shaped like the first one but
    for the time axis (axis 1) of the targets, the weights and x's per-word arrays ("tokens",
    "regions", "objects") (caption batches are cut to their own length): a strategy hands a whole
    batch of
    unknown size to every replica, with an unknown count an epoch's logged loss comes out
    wrong, and Keras' own adapter fixes the time axis at the first batches' length.
    """
    if isinstance(data, tf.data.Dataset):
        return data
    first = data[0]

    def spec(array, timed):
        array = np.asarray(array)
        shape = list(array.shape)
        if timed and array.ndim >= 2:
            shape[1] = None
        return tf.TensorSpec(shape, array.dtype)

    def signature(batch):
        x, *rest = batch
        if isinstance(x, dict):
            x = {key: spec(value, key in WORD_KEYS) for key, value in x.items()}
        else:
            x = spec(x, False)
        return (x, *(spec(value, True) for value in rest))

    def generate():
        for index in range(len(data)):
            yield data[index]
    rows = len(tf.nest.flatten(first)[0])
    return tf.data.Dataset.from_generator(
        generate, output_signature=signature(first)).unbatch().batch(
            rows, drop_remainder=True).apply(
            tf.data.experimental.assert_cardinality(len(data))).prefetch(2)
