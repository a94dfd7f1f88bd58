"""Data-parallel training on the engines Keras already has.

JAX: ``keras.distribution.DataParallel`` over the visible devices (or the first
``TrainConfig.devices``). It is SPMD: the step is one program over the global batch, laid
out across the devices along the batch axis, so the loss, the REINFORCE terms, the moving
baseline and the random draws are those of the single-device run on the same global batch
(up to the order of floating-point sums), and every device holds the same weights. The
global batch is ``batch_size``; it must divide among the devices (every batch of an epoch
plan is full, its last one filled up at weight 0, so none is left over).

TensorFlow's ``tf.distribute`` is not wired in: ``--distribute`` on TensorFlow is refused
with a line that says so.
"""

import contextlib

import keras

from captioner.errors import ConfigError


def data_parallel(config):
    """A context in which the model is created and trained, for a ``TrainConfig``: the
    DataParallel distribution's scope when ``config.distribute``, else nothing."""
    if not config.distribute:
        if config.devices is not None:
            raise ConfigError("--devices needs --distribute")
        return contextlib.nullcontext()
    if keras.backend.backend() != "jax":
        raise ConfigError("--distribute runs on the JAX backend (KERAS_BACKEND=jax, "
                          "keras.distribution.DataParallel); tf.distribute is not supported yet")
    devices = keras.distribution.list_devices()
    if config.devices is not None:
        if not 1 <= config.devices <= len(devices):
            raise ConfigError(f"--devices {config.devices}: {len(devices)} device(s) visible")
        devices = devices[:config.devices]
    if config.batch_size % len(devices):
        raise ConfigError(f"--batch-size {config.batch_size} does not divide among "
                          f"{len(devices)} devices; choose a multiple of {len(devices)}")
    return keras.distribution.DataParallel(devices=devices).scope()
