"""The command tests' model folder: a tiny captioner saved once per module."""

import pytest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model, vocabulary):
    from tests.helpers import save_model
    folder = tmp_path_factory.mktemp("model")
    save_model(str(folder), tiny_model, vocabulary)
    return folder
