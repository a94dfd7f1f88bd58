"""Data-parallel training overhead: steps/s on 1 and on 4 virtual CPU devices, JAX and
TensorFlow.

    python -m benchmarks.data_parallel [--steps 20] [--batch-size 32] [--backend jax,tensorflow]

Each run trains the default captioner (small CNN at 96 px, soft attention) on the same
random global batch in a fresh process, through the training loop's placement
(``captioner.training.distribution``): one device, then 4 virtual devices, on JAX
``keras.distribution.DataParallel`` (``XLA_FLAGS=--xla_force_host_platform_device_count=4``)
and on TensorFlow ``MirroredStrategy`` (4 logical CPU devices). On one machine's CPU cores
the 4 devices share the same cores, so the figure measures the overhead of splitting the
batch and reducing the gradients, not a speed-up. Prints one JSON line per run.

Internal imports: the captioner's factory and the training placement
(``captioner.training.distribution``), which is what it measures.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import numpy as np
import keras
devices, steps, batch = (int(value) for value in sys.argv[1:4])
import tensorflow as tf
if keras.backend.backend() == "tensorflow":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
from captioner.config import ModelConfig, TrainConfig
from captioner.models.captioner import create_captioner
from captioner.training.distribution import placement
where = placement(TrainConfig.of(distribute=devices > 1, devices=devices if devices > 1 else None,
                              batch_size=batch))
with where.scope:
    config = ModelConfig()
    config.vocab_size, config.vocab_hash, config.max_length = 1000, "benchmark", 15
    model = create_captioner(config, seed=0)
    where.prepare(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = {"images": rng.integers(0, 256, (batch, 96, 96, 3), dtype=np.uint8),
         "tokens": rng.integers(4, 1000, (batch, 16)).astype("int32")}
    y, w = rng.integers(4, 1000, (batch, 16)).astype("int32"), np.ones((batch, 16), "float32")
    data = tf.data.Dataset.from_tensors((x, y, w)).repeat()
    model.fit(where.input(data), steps_per_epoch=1, epochs=1, verbose=0)  # compiles
    started = time.perf_counter()
    history = model.fit(where.input(data), steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
print(json.dumps({"devices": devices, "steps_per_s": round(steps / seconds, 2),
                  "images_per_s": round(steps * batch / seconds, 1), "batch_size": batch,
                  "loss": round(float(history.history["loss"][-1]), 4)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backend", default="jax,tensorflow")
    args = parser.parse_args()
    from benchmarks.common import machine
    for backend, devices in ((b, d) for b in args.backend.split(",") for d in (1, 4)):
        env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=backend,
                   XLA_FLAGS="--xla_force_host_platform_device_count=4",
                   TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run([sys.executable, "-c", CHILD, str(devices), str(args.steps),
                                 str(args.batch_size)], capture_output=True, text=True,
                                env=env)
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        figure = json.loads(result.stdout.strip().splitlines()[-1])
        print(json.dumps({"figure": "data-parallel training, small CNN at 96 px, soft "
                                    "attention, 16 decoder steps", "backend": backend,
                          "virtual_devices": devices > 1, **figure,
                          "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
