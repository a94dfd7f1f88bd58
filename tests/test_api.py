"""The public API: the README's and the Python guide's examples run as written, and
caption() takes arrays."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def python_example(path, heading):
    """The first Python block under ``heading`` of the Markdown file ``path``."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_example(code, folder):
    os.symlink(os.path.join(ROOT, "assets"), folder / "assets")
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))


def test_the_readme_example_runs(tmp_path):
    result = run_example(python_example("README.md", "## In Python"), tmp_path)
    assert result.returncode == 0, result.stderr
    caption, shape = result.stdout.strip().splitlines()[-2:]
    assert len(caption.split()) >= 3  # words
    words, height, width = eval(shape)
    assert words == len(caption.split()) and (height, width) == (12, 12)  # a map per word


@pytest.mark.slow
def test_the_python_guide_example_runs(tmp_path):
    """(On the default backend only: the API adds no backend-specific code.)"""
    result = run_example(python_example("docs/guides/python-api.md", "# Python API"),
                         tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()[-2:]
    assert "(" in first and first.split(" (")[0].split()  # a caption, then alpha's shape
    assert second.split()  # the new model's caption: words
    assert (tmp_path / "runs" / "tiny" / "model.keras").is_file()


def test_load_model_without_a_folder_is_the_bundled_model_from_any_directory(tmp_path,
                                                                             monkeypatch):
    import captioner
    monkeypatch.chdir(tmp_path)
    model = captioner.load_model()
    assert os.path.samefile(model.folder, os.path.join(ROOT, "assets", "model"))
    sample = os.path.join(ROOT, "assets", "samples", "shapes_004201.png")
    found = model.caption([sample])[0]
    assert isinstance(found, captioner.ImageCaptions)
    assert isinstance(found.best, captioner.Caption) and found.caption


@pytest.mark.backend
def test_caption_takes_arrays_and_files_alike(tmp_path):
    import captioner
    from captioner.commands import default_model_dir
    from captioner.data.images import Unreadable, load_image
    sample = os.path.join(ROOT, "assets", "samples", "shapes_004201.png")
    model = captioner.load_model(default_model_dir())
    assert isinstance(model, captioner.ImageCaptioner)
    search = captioner.SearchConfig(beam=2, n_best=2)
    from_file, from_array = model.caption([sample, load_image(sample)], search=search)
    assert from_file.caption == from_array.caption and len(from_file.n_best) == 2
    assert (from_file.path, from_array.path) == (sample, None)
    np.testing.assert_allclose(from_file.best.alphas, from_array.best.alphas, atol=1e-6)
    assert from_file.best.alphas.shape == (len(from_file.best.words),) + model.grid_shape
    with pytest.raises(ValueError, match="uint8 RGB"):
        model.caption([np.zeros((8, 8), np.float32)])
    broken = tmp_path / "broken.png"
    broken.write_bytes(open(sample, "rb").read()[:100])
    from captioner.errors import ImageError
    with pytest.raises(ImageError, match="broken.png"):
        captioner.caption(default_model_dir(), [sample, str(broken)])
    answered, failed = model.caption([sample, str(broken)], unreadable="report")
    assert answered.caption == model.caption([sample])[0].caption
    assert isinstance(failed, Unreadable) and failed.path == str(broken)
    assert "broken.png" in failed.reason
