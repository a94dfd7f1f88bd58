"""``captioner env``: what the machine gives, as text and JSON, exit 1 when a job named
with --need lacks something, and the ImageNet weights Keras reads offline."""

import json
import os
import subprocess
import sys

from tests.commands.helpers import captioner
from tests.conftest import ROOT


def test_env_reports_the_backend_devices_and_what_each_job_lacks(monkeypatch):
    import keras
    found = captioner("env", "--json")
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert report["backend"] == keras.backend.backend()
    assert report["packages"]["keras"] == keras.__version__
    assert report["devices"] and report["devices"][0]["name"]
    assert report["dtype_policy"] in ("float32", "mixed_bfloat16")
    assert report["missing"] == []
    assert set(report["imagenet_weights"]["files"]) == {"resnet50", "inception_v3",
                                                        "mobilenet_v2", "efficientnet_b0"}
    text = captioner("env")
    assert text.returncode == 0 and f"backend       {report['backend']}" in text.stdout
    # a job whose program is not on PATH: exit 1, each lack on a line
    monkeypatch.setenv("PATH", "")
    lacking = captioner("env", "--need", "ptb", "browser")
    assert lacking.returncode == 1
    assert "missing       ptb: Java, for the PTB tokenizer and METEOR" in lacking.stdout
    assert "missing       browser: Chromium" in lacking.stdout
    assert captioner("env", "--need", "teleport").returncode == 2


OFFLINE = r"""
import json, os, sys
import numpy as np
from captioner.models.encoder import build_backbone, imagenet_file, imagenet_folder
from captioner.commands.env import imagenet_weights
path = os.path.join(imagenet_folder(), imagenet_file("mobilenet_v2", 224))
os.makedirs(os.path.dirname(path))
made = build_backbone("mobilenet_v2", 224)  # random: weights nobody downloaded
made.save(path)  # in Keras' legacy HDF5 format, as keras.applications' files are
loaded = build_backbone("mobilenet_v2", 224, weights="imagenet")  # offline: from the cache
same = all(np.array_equal(a, b) for a, b in zip(made.get_weights(), loaded.get_weights()))
print(json.dumps({"same": same, "path": path,
                  "listed": imagenet_weights()["files"]["mobilenet_v2"]}))
"""


def test_imagenet_weights_are_read_offline_from_the_file_keras_caches(tmp_path):
    """The file ``imagenet_file`` names, put in Keras' cache, is what --weights imagenet
    loads without a network (a locally made one here), and ``captioner env`` lists it."""
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras"), PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", OFFLINE], capture_output=True, text=True,
                            env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["same"] and found["path"].startswith(str(tmp_path / "keras" / "models"))
    assert found["listed"] == {"file": found["path"], "present": True}
