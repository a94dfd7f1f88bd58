"""The exported SavedModel serves the bundled model's captions in a process that never
imports captioner: from uint8 model inputs exactly, and from the encoded files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
images = np.load(sys.argv[2])
files = tf.constant([open(path, "rb").read() for path in sys.argv[3:]])
exact, decoded = served.serve(tf.constant(images)), served.serve_bytes(files)
assert not any(name.startswith("captioner") for name in sys.modules)
print(json.dumps({"captions": [c.decode() for c in exact["captions"].numpy()],
                  "from_files": [c.decode() for c in decoded["captions"].numpy()],
                  "probabilities": exact["probabilities"].numpy().tolist(),
                  "lengths": exact["lengths"].numpy().tolist(),
                  "alphas_shape": list(exact["alphas"].shape)}))
"""


def test_the_saved_model_serves_the_captions_of_caption_py(tmp_path):
    import keras
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a SavedModel is exported with the TensorFlow backend")
    from captioner.data.images import load_resized
    from captioner.export import export_saved_model
    from captioner.inference import caption
    from captioner.saving import load_model
    model_folder = os.path.join(ROOT, "assets", "model")
    out = export_saved_model(model_folder, str(tmp_path / "served"))
    assert {"MODEL_CARD.md", "saved_model.pb", "vocab.json"} <= set(os.listdir(out))
    folder = os.path.join(ROOT, "assets", "samples")
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    saved = load_model(model_folder)
    size = saved.model.model_config.encoder.image_size
    np.save(tmp_path / "images.npy", np.stack([load_resized(path, size) for path in paths]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", SERVE, out, str(tmp_path / "images.npy"),
                             *paths], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = caption(saved, paths)
    assert served["captions"] == [item["caption"] for item in expected]
    assert served["from_files"] == served["captions"]  # resized in the graph, same words
    for row, item in enumerate(expected):
        length = served["lengths"][row]
        np.testing.assert_allclose(served["probabilities"][row][:length],
                                   item["probabilities"], atol=1e-5)
    assert served["alphas_shape"][2:] == list(saved.model.grid_shape)
