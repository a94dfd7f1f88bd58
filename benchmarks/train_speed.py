"""Training speed at the arithmetic: FLOPs per training step and the GFLOP/s achieved.

    python -m benchmarks.train_speed [--backend jax,tensorflow] [--score additive,general]
                                     [--steps 20] [--batch 32] [--model DIR]

The default model's configuration (``assets/model/config.json``; ``--score`` swaps its
attention score, additive by default; ``--model`` takes another model folder's, e.g. a
Transformer's, as it is), one training step of
``fit()`` (``train_on_batch``: forward, loss, gradients, Adam with clipping) on a batch of
``--batch`` captions padded to ``max_length + 1`` words, in two kinds:
- "decoder": on cached features (the encoder frozen, as ``train.py`` runs with
  ``fine_tune: false``), the decoder's pass alone;
- "joint": on images, the small CNN trained with the decoder.
FLOPs per step are XLA's own count (``cost_analysis`` of the jitted JAX train step, with
the recurrence unrolled: XLA counts a loop's body once); the TensorFlow step does the same
arithmetic, so its GFLOP/s use the same count. The decoder runs its recurrence as its
attention layer prefers (``GridAttention.recurrence``); ``--recurrence`` overrides it. Each figure
is
the median of ``--steps`` warm steps; the peak is the machine's fp32 peak as given by
``--peak`` (157 GFLOP/s for these 2 cores, AVX2 FMA at their clock). One JSON line each.

Internal imports: the model factory and the training compile: it times one step.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, sys, time
import numpy as np
import keras
from captioner.config import ModelConfig, TrainConfig
from captioner.models.captioner import create_captioner
from captioner.training.loop import compile_for_training

steps, batch, root, score, recurrence, policy, folder = sys.argv[1:8]
steps, batch = int(steps), int(batch)
keras.config.set_dtype_policy(policy)
with open(os.path.join(folder or os.path.join(root, "assets", "model"), "config.json")) as file:
    saved = json.load(file)
if not folder:
    saved["model"]["decoder"]["score"] = score
config = ModelConfig.from_dict(saved["model"])
rng = np.random.default_rng(0)
words = config.max_length + 1
tokens = rng.integers(4, config.vocab_size, (batch, words)).astype("int32")
targets = rng.integers(4, config.vocab_size, (batch, words)).astype("int32")
mask = np.ones((batch, words), "float32")
mask[:, -3:] = 0.0  # a few padded words, as in a real batch


def flops(model, data):
    if keras.backend.backend() != "jax":
        return None
    import jax
    model.decoder.recurrence = "unrolled"  # XLA counts a loop's body once
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    # a function of its own: jax.jit(model.train_step) would find fit()'s traced step
    compiled = jax.jit(lambda *args: model.train_step(*args)).lower(state, data).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    model.decoder.recurrence = None if recurrence == "auto" else recurrence
    return float(analysis["flops"])


for kind in ("decoder", "joint"):
    model = create_captioner(config, seed=0)
    if kind == "decoder":
        model.encoder.trainable = False
        size = model.encoder.image_size
        images = rng.integers(0, 256, (batch, size, size, 3)).astype("uint8")
        inputs = {"features": np.asarray(model.encode(images)), "tokens": tokens}
    else:
        size = model.encoder.image_size
        inputs = {"images": rng.integers(0, 256, (batch, size, size, 3)).astype("uint8"),
                  "tokens": tokens}
    model.decoder.recurrence = None if recurrence == "auto" else recurrence
    compile_for_training(model, TrainConfig(), steps_per_epoch=100)
    for _ in range(3):  # compiles, then warms
        loss = model.train_on_batch(inputs, targets, sample_weight=mask, return_dict=True)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = model.train_on_batch(inputs, targets, sample_weight=mask, return_dict=True)
        times.append(time.perf_counter() - started)
    count = flops(model, (inputs, targets, mask))
    scanned = hasattr(model.decoder, "_scanned") and model.decoder._scanned(tokens, training=True)
    print(json.dumps({"kind": kind, "decoder": config.decoder.kind,
                      "score": getattr(config.decoder, "score", None), "dtype_policy": policy,
                      "recurrence": "scan" if scanned else "unrolled", "batch": batch,
                      "words": words,
                      "ms_per_step": round(1000 * float(np.median(times)), 2),
                      "gflop_per_step": None if count is None else round(count / 1e9, 3),
                      "loss": round(float(loss["loss"]), 4)}), flush=True)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="jax,tensorflow")
    parser.add_argument("--score", default="additive")
    parser.add_argument("--recurrence", default="auto", choices=["auto", "scan", "unrolled"])
    parser.add_argument("--dtype-policy", default="float32",
                        help="comma-separated Keras dtype policies, e.g. "
                             "float32,mixed_bfloat16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--model", default="", help="a model folder whose configuration to "
                        "time (default: assets/model's, with --score)")
    parser.add_argument("--peak", type=float, default=157.0,
                        help="the machine's fp32 peak in GFLOP/s")
    args = parser.parse_args()
    from benchmarks.common import machine
    counts = {}  # XLA's count, from the JAX run, for the other backends' GFLOP/s
    for score, backend, policy in [(score, backend, policy)
                                   for score in args.score.split(",")
                                   for backend in args.backend.split(",")
                                   for policy in args.dtype_policy.split(",")]:
        env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run([sys.executable, "-c", CHILD, str(args.steps), str(args.batch),
                                 ROOT, score, args.recurrence, policy, args.model],
                                capture_output=True, text=True, env=env)
        if result.returncode:
            sys.exit(result.stderr[-2000:])
        for line in result.stdout.strip().splitlines():
            row = json.loads(line)
            key = (row["kind"], score, args.model)  # the same arithmetic in any precision
            gflop = row.pop("gflop_per_step") or counts.get(key)
            counts.setdefault(key, gflop)
            figures = {}
            if gflop:
                achieved = gflop / (row["ms_per_step"] / 1000)
                figures = {"gflop_per_step": gflop, "gflop_per_s": round(achieved, 1),
                           "share_of_peak": round(achieved / args.peak, 3)}
            print(json.dumps({"figure": "training step, default model", "backend": backend,
                              **row, **figures, "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
