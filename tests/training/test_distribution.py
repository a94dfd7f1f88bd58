"""Data-parallel training on 4 virtual CPU devices ends with the weights of one device
trained on the same global batches: soft attention, hard attention (REINFORCE, its moving
baseline, sampled cells), the Transformer decoder (with dropout) and the RAM, on JAX
(``keras.distribution.DataParallel`` over
``--xla_force_host_platform_device_count=4``) and on TensorFlow (``MirroredStrategy`` over
4 logical CPU devices). A checkpoint of a 4-device run resumes on one device. Two JAX
processes on localhost, 2 devices each, train as one process on 4, and only the first
writes files.

The runs happen in child processes: the device count must be set before JAX or TensorFlow
starts. Each run trains one epoch (2 or 3 steps of Adam, learning rate 5e-3).

Tolerances on every weight, absolute:
- JAX, and TensorFlow for the models without batch normalisation (hard attention and
  the Transformer on a frozen encoder's features, the RAM): 2e-5. N devices sum the batch in
  another order
  (per-device partial sums, then across devices), so float32 results differ in the last
  bits, and Adam's first steps (update ~ lr * g / |g|) let a difference of 1e-7 in a small
  gradient move a weight by up to about 1e-6 per step.
- TensorFlow with the small CNN's batch normalisation trained (soft attention): 1e-3.
  Keras' synchronised batch statistics compute the variance as E[x^2] - E[x]^2 from
  all-reduced sums, one device as E[(x - E[x])^2]; the float32 difference (~1e-6 relative)
  reaches the convolution kernels' gradients, and the same Adam steps amplify it (3e-4
  measured). Without synchronised statistics the weights differ by 5e-2 and the loss in
  its third digit, so the check still tells the two apart.
The losses (train loss, NLL, RAM error) must agree to 1e-5 relative: a loss not scaled to
the global batch would be 4 times too large in them. Adam's steps hardly depend on the
gradients' scale, so the weights alone would not show it.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT

COMMON = r"""
import json, os, sys
import keras
import numpy as np
from captioner.config import RAMConfig, TrainConfig, TransformerConfig, preset
from captioner.data.classification import digit_splits, load_digits
from captioner.data.coco import load_coco_split
from captioner.saving import load_keras_file
from tests.helpers import load_model
from captioner.training.checkpoint import latest_model_path
from captioner.training.captioning import CaptionTrainer, TrainingData


def captioner(coco, out, name, attention, epochs=1, frozen=False, validate=True,
              grounded=False, **training):
    train, boxes = load_coco_split(coco, "train", instances=grounded)
    train = train[:16]
    val = load_coco_split(coco, "val", instances=False)[0][:8] if validate else []
    model = preset("tiny")
    if grounded:  # attention supervision and the grounding head, from the boxes
        model.loss.attention_supervision, model.loss.grounding = 1.0, 1.0
    if attention == "transformer":  # with dropout: each device drops its own units
        model.decoder = TransformerConfig(layers=2, heads=2, model_width=16, ff_width=32,
                                          dropout=0.2)
    else:
        model.decoder.attention = attention
    model.encoder.fine_tune = not frozen
    config = TrainConfig.of(epochs=epochs, batch_size=8, learning_rate=5e-3, seed=4, max_words=8,
                         validation_images=2, **training)
    return CaptionTrainer(TrainingData(train, val, "test", None, boxes if grounded else None),
                          os.path.join(out, name), model,
                          config, feature_dir=os.path.join(out, name + "-features"))


def weights(out, name):
    model = load_keras_file(latest_model_path(os.path.join(out, name)))
    return model, [np.asarray(w) for w in model.get_weights()]


def compare(out, one, many, histories, keys):
    (_, a), (_, b) = weights(out, one), weights(out, many)
    return {"max_difference": max(float(np.abs(x - y).max()) for x, y in zip(a, b)),
            "moved": max(float(np.abs(x).max()) for x in a),
            "losses": [[row[k] for k in keys] for row in histories]}
"""

DEVICES = COMMON + r"""
from captioner.training.ram import RAMTrainer

coco, out = sys.argv[1], sys.argv[2]
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)


def ram(out, name, **training):
    digits, labels = load_digits("sklearn")
    # 128 training digits in batches of 48: the last batch is filled up at weight 0
    train, val, _ = digit_splits(digits[:160], labels[:160], canvas=28, batch_size=48, seed=5)
    config = RAMConfig(height=28, width=28, classes=10, glimpses=2, patch=6, scales=2,
                       glimpse_hidden=16, glimpse_units=32, core_units=32, seed=5)
    return RAMTrainer(train, val, os.path.join(out, name), config,
                      TrainConfig.of(epochs=1, batch_size=48, seed=5, **training),
                      [str(k) for k in range(10)], "digits")


class Baseline(keras.callbacks.Callback):
    # the REINFORCE baseline's copies on the devices, as training leaves them
    def on_train_end(self, logs=None):
        value = self.model.baseline.value
        if keras.backend.backend() == "jax":
            copies = [(str(s.device), float(np.asarray(s.data))) for s in value.addressable_shards]
        else:
            copies = [(v.device, float(v.numpy())) for v in value.values]
        self.devices = sorted({device for device, _ in copies})
        self.copies = sorted({number for _, number in copies})


report = {}
# soft attention trains 2 epochs, the 4-device run stops after the first, which is
# compared, and then resumes on one device
runs = (("soft", lambda n, **t: captioner(coco, out, n, "soft", epochs=2, validate=False, **t),
         ("loss", "nll")),
        ("hard", lambda n, **t: captioner(coco, out, n, "hard", frozen=True, **t),
         ("loss", "nll", "val_loss")),
        ("transformer", lambda n, **t: captioner(coco, out, n, "transformer", frozen=True,
                                                 grounded=True, **t),
         ("loss", "nll", "val_loss")),
        ("ram", lambda n, **t: ram(out, n, **t), ("loss", "train_error", "val_error")))
for kind, make, keys in runs:
    histories = [make(kind + "1").run(progress=False, stop_after=1)[0]]
    probe = Baseline()
    histories.append(make(kind + "4", distribute=True).run(
        progress=False, stop_after=1, callbacks=[probe] if kind == "hard" else [])[0])
    report[kind] = compare(out, kind + "1", kind + "4", histories, keys)
    if kind == "transformer":  # trained with the grounding head
        report[kind]["head"] = weights(out, kind + "4")[0].grounding is not None
    if kind == "hard":
        report[kind].update(baselines=[float(np.asarray(weights(out, n)[0].baseline))
                                       for n in ("hard1", "hard4")],
                            baseline_devices=probe.devices, baseline_copies=probe.copies)
# the 4-device checkpoint resumes on one device, and its model captions
runs[0][1]("soft4").run(resume=True, progress=False)
from captioner.tasks import ImageCaptioner
captioner = ImageCaptioner.from_folder(os.path.join(out, "soft4"))
report["resumed_caption"] = captioner.caption([load_coco_split(coco, "val")[0][0].path])[0].caption
print("REPORT " + json.dumps(report))
"""

PROCESSES = COMMON + r"""
coco, out, role = sys.argv[1], sys.argv[2], sys.argv[3]
if role == "one":
    history = captioner(coco, out, "one", "soft").run(progress=False)
else:  # process 1 gets a folder of its own: it must never be written
    name = "two" if os.environ["KERAS_DISTRIBUTION_PROCESS_ID"] == "0" else "two-process-1"
    history = captioner(coco, out, name, "soft", distribute=True).run(progress=False)
print("HISTORY " + json.dumps(history[0]))
"""


def run_child(script, arguments, backend, devices, extra_env=None, wait=True):
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=backend, **(extra_env or {}))
    if backend == "jax":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    command = [sys.executable, "-c", script, *arguments]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def parse(stdout, tag):
    line = next(line for line in stdout.splitlines() if line.startswith(tag + " "))
    return json.loads(line[len(tag) + 1:])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_four_devices_train_as_one_device(backend, synthetic_coco, tmp_path):
    # one child per backend does every run (each pays the start of JAX or TensorFlow once)
    report = parse(run_child(DEVICES, [synthetic_coco, str(tmp_path)], backend, devices=4),
                   "REPORT")
    for kind in ("soft", "hard", "transformer", "ram"):  # the weights and losses of one device
        result = report[kind]
        tolerance = 1e-3 if (backend, kind) == ("tensorflow", "soft") else 2e-5
        assert result["moved"] > 0.01, (kind, result)  # the weights trained
        assert result["max_difference"] < tolerance, (kind, result)
        one, four = result["losses"]
        assert four == pytest.approx(one, rel=1e-5), (kind, result)
    assert report["transformer"]["head"]  # the grounding head and its labels, too
    hard = report["hard"]  # the REINFORCE baseline is one value on every device
    assert len(hard["baseline_devices"]) == 4 and len(hard["baseline_copies"]) == 1
    assert hard["baselines"][0] == pytest.approx(hard["baselines"][1], abs=1e-5)
    assert hard["baselines"][0] != 0.0  # it moved
    assert report["resumed_caption"]  # a 4-device checkpoint resumed on one device captions


def test_several_tensorflow_workers_are_refused_in_one_line(monkeypatch):
    import keras
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TF_CONFIG is read on TensorFlow")
    from captioner.config import TrainConfig
    from captioner.errors import ConfigError
    from captioner.training.distribution import placement
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match="keras-team/keras#20329"):
        placement(TrainConfig.of(distribute=True))


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_jax_processes_train_as_one_and_only_the_first_writes(synthetic_coco, tmp_path):
    arguments = [synthetic_coco, str(tmp_path)]
    address = f"localhost:{free_port()}"
    children = [run_child(PROCESSES, arguments + ["two"], "jax", devices=2, wait=False,
                          extra_env={"KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
                                     "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                                     "KERAS_DISTRIBUTION_PROCESS_ID": str(index)})
                for index in range(2)]
    one = parse(run_child(PROCESSES, arguments + ["one"], "jax", devices=1), "HISTORY")
    outputs = []
    for child in children:
        stdout, stderr = child.communicate(timeout=900)
        assert child.returncode == 0, stderr[-3000:]
        outputs.append(parse(stdout, "HISTORY"))
    assert not (tmp_path / "two-process-1").exists()  # process 1 wrote nothing
    assert (tmp_path / "two" / "model.keras").is_file()
    assert outputs[0]["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert outputs[1]["loss"] == pytest.approx(one["loss"], rel=1e-5)  # the global loss
    import numpy as np

    from captioner.saving import load_keras_file
    from captioner.training.checkpoint import latest_model_path
    a, b = (load_keras_file(latest_model_path(tmp_path / name)).get_weights()
            for name in ("one", "two"))
    assert max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b)) < 2e-5
