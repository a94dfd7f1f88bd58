"""Data-parallel training on 4 virtual CPU devices (JAX's
``--xla_force_host_platform_device_count``) ends with the weights of one device trained on
the same global batches: soft attention, hard attention (REINFORCE, its moving baseline,
sampled cells) and the RAM. A checkpoint of the 4-device run resumes on one device.

The runs happen in a child process, as the device count must be set before JAX starts.
Tolerance: 2e-5 absolute on every weight after an epoch of Adam steps. The 4-device step sums
the batch in another order (per-device partial sums, then across devices), so the float32
results differ in the last bits, and Adam's division by sqrt(v) lets a difference of 1e-7
in a gradient move a weight by up to about 1e-6 per step.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHILD = r"""
import json, os, sys
import numpy as np
from captioner.config import RamConfig, TrainConfig, preset
from captioner.data.classification import digit_splits, load_digits
from captioner.data.coco import load_coco_split
from captioner.saving import load_keras_file, load_model
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.ram import RamTrainer
import keras

coco, out = sys.argv[1], sys.argv[2]
assert len(keras.distribution.list_devices()) == 4


def captioner(name, attention, epochs=1, **training):
    train = load_coco_split(coco, "train", instances=False)[0][:16]
    model = preset("tiny")
    model.decoder.attention = attention
    config = TrainConfig(epochs=epochs, batch_size=8, learning_rate=5e-3, seed=4, max_words=8,
                         validation_images=2, **training)
    return CaptionTrainer(TrainingData(train, [], "test"), os.path.join(out, name), model,
                          config)


def ram(name, **training):
    digits, labels = load_digits("sklearn")
    train, val, _ = digit_splits(digits[:160], labels[:160], canvas=28, batch_size=32, seed=5)
    config = RamConfig(height=28, width=28, classes=10, glimpses=2, patch=6, scales=2,
                       glimpse_hidden=16, glimpse_units=32, core_units=32, seed=5)
    return RamTrainer(train, val, os.path.join(out, name), config,
                      TrainConfig(epochs=1, batch_size=32, seed=5, **training),
                      [str(k) for k in range(10)], "digits")


def last(name):
    model = load_keras_file(os.path.join(out, name, "checkpoint", "last.keras"))
    return model, [np.asarray(w) for w in model.get_weights()]


class Baseline(keras.callbacks.Callback):
    # the REINFORCE baseline's copies on the devices, as training leaves them
    def on_train_end(self, logs=None):
        shards = self.model.baseline.value.addressable_shards
        self.devices = sorted({str(s.device) for s in shards})
        self.copies = sorted({float(np.asarray(s.data)) for s in shards})


report = {}
for kind, make in (("soft", lambda n, **t: captioner(n, "soft", **t)),
                   ("hard", lambda n, **t: captioner(n, "hard", **t)), ("ram", ram)):
    make(kind + "1").run(progress=False)
    probe = Baseline()
    make(kind + "4", distribute=True).run(progress=False,
                                          callbacks=[probe] if kind == "hard" else [])
    (one, a), (four, b) = last(kind + "1"), last(kind + "4")
    report[kind] = {"max_difference": max(float(np.abs(x - y).max()) for x, y in zip(a, b)),
                    "moved": max(float(np.abs(x).max()) for x in a)}
    if kind == "hard":
        report[kind].update(baselines=[float(np.asarray(one.baseline)),
                                       float(np.asarray(four.baseline))],
                            baseline_devices=probe.devices, baseline_copies=probe.copies)
# a 4-device checkpoint resumes on one device, and its model captions
captioner("moved", "soft", epochs=2, distribute=True).run(progress=False, stop_after=1)
captioner("moved", "soft", epochs=2).run(resume=True, progress=False)
from captioner.inference import caption
saved = load_model(os.path.join(out, "moved"))
report["resumed_caption"] = caption(saved, [load_coco_split(coco, "val")[0][0].path])[0]["caption"]
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(synthetic_coco, tmp_path_factory):
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    result = subprocess.run([sys.executable, "-c", CHILD, synthetic_coco,
                             str(tmp_path_factory.mktemp("distributed"))],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.mark.parametrize("kind", ["soft", "hard", "ram"])
def test_four_devices_end_with_the_weights_of_one(report, kind):
    assert report[kind]["moved"] > 0.01  # the weights trained
    assert report[kind]["max_difference"] < 2e-5, report[kind]


def test_the_reinforce_baseline_is_one_value_on_every_device(report):
    hard = report["hard"]
    assert len(hard["baseline_devices"]) == 4 and len(hard["baseline_copies"]) == 1
    assert hard["baselines"][0] == pytest.approx(hard["baselines"][1], abs=1e-5)
    assert hard["baselines"][0] != 0.0  # it moved


def test_a_four_device_checkpoint_resumes_on_one_and_captions(report):
    assert report["resumed_caption"]
