"""What a machine with Keras and JAX but no TensorFlow can do (``pip install .[jax]``):
caption, render, train (the Python input pipeline), resume, evaluate.

``.ci/run`` runs this file in a second venv made that way (KERAS_BACKEND=jax, TensorFlow
absent); here it runs with whatever is installed, and says which pipeline trained."""

import importlib.util
import json
import os

import pytest

from captioner.commands import caption, train
from tests.helpers import run_command

pytestmark = pytest.mark.backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "assets", "samples")
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
TINY = ["--image-size", 32, "--width", 8, "--lstm-units", 32, "--embedding-dim", 16,
        "--attention-units", 16, "--batch-size", 8, "--validation-images", 2,
        "--max-words", 8, "--no-progress"]


def test_the_default_pipeline_is_tf_data_exactly_when_tensorflow_is_installed():
    from captioner.data.dataset import CaptionBatches
    from captioner.errors import ConfigError
    from captioner.training.captioning import batches_class
    assert (batches_class("auto") is not CaptionBatches) == HAS_TENSORFLOW
    assert batches_class("python") is CaptionBatches
    if not HAS_TENSORFLOW:
        with pytest.raises(ConfigError, match="--pipeline tf.data needs TensorFlow"):
            batches_class("tf.data")


def test_the_bundled_model_captions_and_draws_its_maps(tmp_path):
    result = run_command(caption.main, SAMPLES, "--json", "--attention-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert len(answers) == len(os.listdir(SAMPLES)) and all(a["caption"] for a in answers)
    assert len(list(tmp_path.glob("*_attention.png"))) == len(answers)


@pytest.mark.slow  # end to end; .ci/run runs it in the JAX-only venv and the slow pass
def test_train_resume_and_evaluate(synthetic_coco, tmp_path):
    out = tmp_path / "run"
    first = run_command(train.main, "--coco", synthetic_coco, "--out", out, "--epochs", 1,
                        *TINY)
    assert first.returncode == 0, first.stderr
    resumed = run_command(train.main, "--coco", synthetic_coco, "--out", out, "--resume",
                          "--epochs", 2, *TINY)
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2] and "val_cider" in history[1]
    scored = run_command(caption.main, "--model", out, "--coco", synthetic_coco,
                         "--split", "test")
    assert scored.returncode == 0, scored.stderr
    assert "CIDEr" in scored.stdout + scored.stderr


@pytest.mark.skipif(HAS_TENSORFLOW, reason="TensorFlow is installed: Keras' default stands")
def test_keras_runs_on_jax_without_being_told(tmp_path):
    """``pip install .[jax]`` then ``caption ...``: no KERAS_BACKEND needed."""
    import subprocess
    import sys
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "caption.py"),
                             os.path.join(SAMPLES, sorted(os.listdir(SAMPLES))[0])],
                            capture_output=True, text=True, env={**env, "PYTHONPATH": ROOT},
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
