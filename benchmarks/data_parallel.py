"""Data-parallel training overhead: steps/s on 1 and on 4 virtual CPU devices (JAX).

    python benchmarks/data_parallel.py [--steps 20] [--batch-size 32]

Each run trains the default captioner (small CNN at 96 px, soft attention) on the same
random global batch in a fresh process, once with one device and once with
``keras.distribution.DataParallel`` over 4 virtual devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``). On one machine's CPU cores the
4 devices share the same cores, so the figure measures the overhead of sharding the batch
and reducing the gradients, not a speed-up. Prints one JSON line per run.
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
from captioner.config import ModelConfig
from captioner.models.captioner import create_captioner
devices, steps, batch = (int(value) for value in sys.argv[1:4])
scope = keras.distribution.DataParallel(
    devices=keras.distribution.list_devices()[:devices]).scope() if devices > 1 else None
if scope:
    scope.__enter__()
config = ModelConfig()
config.vocab_size, config.vocab_hash, config.max_length = 1000, "benchmark", 15
model = create_captioner(config, seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
rng = np.random.default_rng(0)
x = {"images": rng.integers(0, 256, (batch, 96, 96, 3), dtype=np.uint8),
     "tokens": rng.integers(4, 1000, (batch, 16)).astype("int32")}
y, w = rng.integers(4, 1000, (batch, 16)).astype("int32"), np.ones((batch, 16), "float32")
model.train_on_batch(x, y, sample_weight=w)  # compiles
started = time.perf_counter()
for _ in range(steps):
    loss = model.train_on_batch(x, y, sample_weight=w, return_dict=True)["loss"]
seconds = time.perf_counter() - started
print(json.dumps({"devices": devices, "steps_per_s": round(steps / seconds, 2),
                  "images_per_s": round(steps * batch / seconds, 1), "batch_size": batch,
                  "loss": round(float(np.asarray(loss)), 4)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from benchmarks.common import machine
    for devices in (1, 4):
        env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="jax",
                   XLA_FLAGS="--xla_force_host_platform_device_count=4",
                   TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run([sys.executable, "-c", CHILD, str(devices), str(args.steps),
                                 str(args.batch_size)], capture_output=True, text=True,
                                env=env)
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        figure = json.loads(result.stdout.strip().splitlines()[-1])
        print(json.dumps({"figure": "data-parallel training, small CNN at 96 px, soft "
                                    "attention, 16 decoder steps", "backend": "jax",
                          "virtual_devices": devices > 1, **figure,
                          "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
