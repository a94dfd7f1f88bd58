"""Data-parallel training on the engines Keras already has: ``keras.distribution`` on JAX,
``tf.distribute`` on TensorFlow, on one host or several.

``placement(config)`` says where a run trains (``TrainConfig.distribute``, ``devices``):

- JAX, one host: ``keras.distribution.DataParallel`` over the visible devices (or the
  first ``devices``). It is SPMD: the step is one program over the global batch, laid out
  across the devices along the batch axis.
- JAX, several hosts: the same, over every host's devices, after
  ``keras.distribution.initialize()`` (it reads ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
  ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``).
- TensorFlow, one host: ``tf.distribute.MirroredStrategy`` over the GPUs (or the logical
  CPU devices where there is no GPU). The step runs once per replica on its slice of the
  global batch; ``captioner.models.replicas`` makes the losses global means, the REINFORCE
  baseline one value and each replica's random draws its own. Several TensorFlow workers
  (``MultiWorkerMirroredStrategy``) are refused: Keras 3's ``fit()`` reduces an input
  dictionary and scalar metrics in ways that strategy rejects (keras-team/keras#20329,
  tensorflow/tensorflow#72388); JAX trains across hosts.

Either way the global batch is ``batch_size`` and must divide among the devices (every
training batch is full: a last batch is filled up at weight 0), each process reads only
its own share of every batch (``Placement.shard``), and only the first process writes
files. The loss, the REINFORCE terms, the baseline and the random numbers are those of one
device on the same global batch, up to the order of floating-point sums.
"""

import contextlib
import dataclasses
import json
import os

import keras

from captioner.errors import ConfigError


@dataclasses.dataclass
class Placement:
    """Where a run trains: ``replicas`` devices in all, this ``process`` of ``processes``,
    and the ``scope`` in which the model is created and trained."""
    replicas: int = 1
    process: int = 0
    processes: int = 1
    scope: contextlib.AbstractContextManager = dataclasses.field(
        default_factory=contextlib.nullcontext)
    strategy: object = None  # the tf.distribute strategy, on TensorFlow

    @property
    def writes(self):
        """Whether this process writes the run's files (the first one does)."""
        return self.process == 0

    @property
    def shard(self):
        """(this process, processes): which share of every global batch it reads."""
        return self.process, self.processes

    def prepare(self, model):
        """Readies a new or restored ``model`` for training here: under a multi-replica
        ``tf.distribute`` strategy its batch normalisation uses the global batch's
        statistics, as one device's does (JAX's SPMD program computes them over the global
        batch already)."""
        if self.strategy is not None and self.replicas > 1:
            from captioner.training.tf_distribution import synchronize_batch_statistics
            synchronize_batch_statistics(model)

    @contextlib.contextmanager
    def alone(self):
        """A context in which the first process works alone (writes files) while the
        others train on: new variables (Keras' saving makes a few) stay on this process,
        where under a JAX distribution across processes their creation would wait for
        every process."""
        if self.processes == 1 or self.strategy is not None:
            yield
            return
        laid_out = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(laid_out)

    def input(self, data):
        """What ``fit()`` and ``evaluate()`` take for ``data``, a data set's ``fit_input()``
        read by this process.

        On TensorFlow a PyDataset becomes a ``tf.data.Dataset`` whose batches have a known
        size and count and a time axis of any length (``tf_distribution.as_dataset``):
        a strategy can then split each one among the replicas, and batches of caption
        lengths the first few did not have still fit (Keras' own adapter fixes the
        shapes it sees first).
        """
        if keras.backend.backend() != "tensorflow":
            return data
        from captioner.training.tf_distribution import as_dataset
        return as_dataset(data)


def placement(config):
    """The :class:`Placement` of a ``TrainConfig``: one device unless
    ``config.distribution.distribute``."""
    if not config.distribution.distribute:
        if config.distribution.devices is not None:
            raise ConfigError("--devices needs --distribute")
        return Placement()
    if keras.backend.backend() == "jax":
        found = _jax_data_parallel(config)
    elif keras.backend.backend() == "tensorflow":
        found = _tf_strategy(config)
    else:
        raise ConfigError(f"--distribute runs on JAX or TensorFlow, not {keras.backend.backend()}")
    if config.batch_size % found.replicas:
        raise ConfigError(f"--batch-size {config.batch_size} does not divide among "
                          f"{found.replicas} devices; choose a multiple of {found.replicas}")
    return found


def _jax_data_parallel(config):
    import jax
    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    if processes > 1 and not jax.distributed.is_initialized():
        # before anything starts JAX's backend; reads the KERAS_DISTRIBUTION_* variables
        keras.distribution.initialize()
    if config.distribution.devices is not None and jax.process_count() > 1:
        raise ConfigError("--devices is for one host; several hosts use all their devices")
    devices = _first(keras.distribution.list_devices(), config.distribution.devices)
    # Each process reads its own share of every batch itself (auto_shard_dataset=False),
    # and the shares are laid out on its devices in process order.
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    return Placement(len(devices), jax.process_index(), jax.process_count(),
                     distribution.scope())


def _tf_strategy(config):
    workers = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {}).get("worker", [])
    if len(workers) > 1:
        raise ConfigError(
            "several TensorFlow workers (TF_CONFIG) are not supported: Keras 3's fit() fails "
            "under MultiWorkerMirroredStrategy (keras-team/keras#20329, "
            "tensorflow/tensorflow#72388); train on several hosts with KERAS_BACKEND=jax")
    from captioner.training.tf_distribution import logical_devices, mirrored_strategy
    strategy = mirrored_strategy(_first(logical_devices(), config.distribution.devices))
    return Placement(strategy.num_replicas_in_sync, scope=strategy.scope(), strategy=strategy)


def _first(devices, count):
    """The first ``count`` of ``devices`` (all of them for None)."""
    if count is None:
        return devices
    if not 1 <= count <= len(devices):
        raise ConfigError(f"--devices {count}: {len(devices)} device(s) visible")
    return devices[:count]
