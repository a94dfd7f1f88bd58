"""The command users type, at COCO scale, with every default on.

    python -m benchmarks.default_path [--backend tensorflow,jax] [--old-commit REV]
                                      [--work /tmp/captioner-input] [--only start,epochs]

Prints one JSON line per figure, each saying what it measured:

- start: ``python train.py --coco DIR --out OUT --epochs 1`` (the README's training
  command; attention supervision on, since the set has instances) on a COCO-sized
  annotation set it generates (118,287 training images with 591,435 captions and 860,001
  instances with polygons, a 5,000-image validation split; the images are 300 640x480
  JPEGs referenced many times, as ``benchmarks/input_pipeline.py`` makes them). Seconds
  from launch to the end of the first training step and the process's peak RSS then;
  then ``--steps`` more steps: the steady step time (median of steps 20 on), and the
  share of it spent waiting for data, 1 - (median step time on the same batches already
  in memory, ``train_on_batch``) / (median step time reading them); and the share of
  decoder steps spent on padding in the epoch's plan. Per backend, for this checkout and,
  with ``--old-commit``, an older one (a git worktree).
- epochs: the same command on a 2,000-image synthetic set for ``--epochs`` epochs: each
  epoch's training seconds, and the largest over the smallest of the steady ones (epoch 2
  on; the first fills the image cache and compiles).

Reproduce the README's table: ``python -m benchmarks.default_path --old-commit d9f3831``.

It trains through ``train.py``, the command users type; the padding share reads the
epoch plan (``captioner.data.dataset``), an internal it measures.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import ROOT, checkouts, emit

CHILD = r"""
import json, os, resource, runpy, sys, time
started, report, steps = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
import numpy as np
import keras

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

class Probe(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends, self.first = [], None

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.time())
        if self.first is None:
            self.first = {"seconds": self.ends[0] - started, "peak_rss_mb": peak_mb()}
        if len(self.ends) > steps:
            self.model.stop_training = True

fit = keras.Model.fit
def probed_fit(self, x, *args, **kwargs):
    probe = Probe()
    kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [probe]
    fit(self, x, *args, **kwargs)
    real = np.diff(probe.ends)[19:]  # steady: most shapes compiled by then
    first, count = 20, len(real)
    if hasattr(x, "take"):  # tf.data
        batches = list(x.skip(first).take(count).as_numpy_iterator())
    else:  # a PyDataset
        batches = [x[i] for i in range(first, first + count)]
    for batch in batches:  # compiles any shape not met yet
        self.train_on_batch(*batch)
    ideal = []
    for batch in batches:
        began = time.perf_counter()
        self.train_on_batch(*batch)
        ideal.append(time.perf_counter() - began)
    with open(report, "w") as handle:
        json.dump({**probe.first, "step_ms": 1000 * float(np.median(real)),
                   "in_memory_step_ms": 1000 * float(np.median(ideal)),
                   "steps": int(count)}, handle)
    os._exit(0)
keras.Model.fit = probed_fit
sys.argv = sys.argv[4:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def padding(coco):
    """The padding share of the default plan (length_bucket 4, batch 32) of the set."""
    from captioner.config import TrainConfig
    from captioner.data.coco import find_coco_split, load_coco_captions
    from captioner.data.dataset import CaptionTable, max_caption_length, plan_epoch
    from captioner.data.vocab import Vocabulary
    config = TrainConfig()
    files = find_coco_split(coco, "train")
    records = load_coco_captions(files.captions, files.images, check_files=False)
    vocabulary = Vocabulary.build((c for r in records for c in r.captions),
                                  config.data.min_count)
    table = CaptionTable(records, vocabulary, max_caption_length(records, config.data.max_words))
    plan = plan_epoch(table, config.batch_size, config.seed, 0,
                      length_bucket=config.data.length_bucket)
    return plan.padding_share(table)[0]


def start(args):
    from benchmarks.input_pipeline import (
        COCO_CAPTIONS,
        COCO_INSTANCES,
        COCO_TRAIN,
        coco_sized,
        photo_data,
    )
    coco = coco_sized(args.work, photo_data(args.work, 300))
    share = padding(coco)
    for backend in args.backend.split(","):
        for name, checkout in checkouts(args.work, args.old_commit):
            with tempfile.TemporaryDirectory(dir=args.work) as out:
                report = os.path.join(out, "report.json")
                command = [sys.executable, "-c", CHILD, str(time.time()), report,
                           str(args.steps), os.path.join(checkout, "train.py"), "--coco",
                           coco, "--out", os.path.join(out, "run"), "--epochs", "1",
                           "--feature-cache", os.path.join(out, "features")]
                env = {**os.environ, "PYTHONPATH": checkout, "KERAS_BACKEND": backend}
                subprocess.run(command, cwd=checkout, check=False, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                result = json.load(open(report)) if os.path.isfile(report) else {}
            step, ideal = result.get("step_ms"), result.get("in_memory_step_ms")
            emit(figure="train.py --coco (COCO-sized annotations), every default",
                 code=name, backend=backend, images=COCO_TRAIN, captions=COCO_CAPTIONS,
                 instances=COCO_INSTANCES,
                 first_step_s=result.get("seconds") and round(result["seconds"], 1),
                 peak_rss_mb_at_first_step=result.get("peak_rss_mb") and
                 round(result["peak_rss_mb"]),
                 steady_steps_per_s=step and round(1000 / step, 2),
                 step_ms=step and round(step, 1), in_memory_step_ms=ideal and round(ideal, 1),
                 data_wait_share=step and round(max(0.0, 1 - ideal / step), 3),
                 steps_timed=result.get("steps"), padding_share=round(share, 3))


def epochs(args):
    from captioner.data.synthetic import generate
    data = os.path.join(args.work, "synthetic-2000")
    if not os.path.isdir(os.path.join(data, "annotations")):
        generate(data, seed=0, splits={"train": 2000, "val": 200, "test": 50})
    for backend in args.backend.split(","):
        with tempfile.TemporaryDirectory(dir=args.work) as out:
            subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--coco", data,
                            "--out", out, "--epochs", str(args.epochs), "--no-progress"],
                           check=True, env={**os.environ, "KERAS_BACKEND": backend},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            history = json.load(open(os.path.join(out, "metrics.json")))["history"]
        seconds = [round(row["train_seconds"], 1) for row in history]
        steady = seconds[1:]
        emit(figure="train.py --coco, 2,000 synthetic images: training seconds per epoch",
             backend=backend, epochs=seconds,
             steady_spread=round(max(steady) / min(steady) - 1, 3))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="start,epochs")
    parser.add_argument("--backend", default="tensorflow,jax")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(),
                                                       "captioner-input"))
    parser.add_argument("--steps", type=int, default=80,
                        help="training steps timed after the first")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--old-commit", default=None,
                        help="also run this revision's train.py (a git worktree)")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    only = set(args.only.split(","))
    if "start" in only:
        start(args)
    if "epochs" in only:
        epochs(args)


if __name__ == "__main__":
    main()
