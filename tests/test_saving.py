"""The model folder: every task saves and loads its own kind (``captioner.saving`` writes
the files they share), folders of the previous layout still load, and anything else is one
clear error."""

import json

import numpy as np
import pytest
from keras import ops

from captioner.config import RAMConfig
from captioner.errors import ModelError
from captioner.models.ram import create_ram
from captioner.tasks import TASKS, ImageCaptioner, RAMClassifier
from tests.helpers import load_model, save_model

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def ram():
    return create_ram(RAMConfig(height=16, width=16, classes=3, glimpses=2, patch=4, scales=2,
                                glimpse_hidden=8, glimpse_units=16, core_units=16, seed=1),
                      seed=0)


def test_every_kind_round_trips_with_its_labels_and_full_config(tiny_model, vocabulary, ram,
                                                                tmp_path):
    images = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    for model, labels in ((tiny_model, vocabulary), (ram, ["a", "b", "c"])):
        folder = tmp_path / type(model).__name__
        save_model(folder, model, labels, card="# card\n", extra={"data": "somewhere"})
        saved = load_model(folder)
        assert isinstance(saved, TASKS[saved.kind]) and type(saved.model) is type(model)
        assert saved.config["model"] == model.model_config.to_dict()
        assert saved.config["data"] == "somewhere"
        written = json.loads((folder / "config.json").read_text())
        assert written["model"] == model.model_config.to_dict()  # every field, readable
        assert (folder / "MODEL_CARD.md").read_text() == "# card\n"
        if saved.kind == "captioner":
            assert saved.vocabulary.words == vocabulary.words
            assert isinstance(saved, ImageCaptioner)
        else:
            assert saved.classes == ["a", "b", "c"] and not (folder / "vocab.json").exists()
            assert isinstance(saved, RAMClassifier)
            np.testing.assert_allclose(ops.convert_to_numpy(saved.model(images)["logits"]),
                                       ops.convert_to_numpy(model(images)["logits"]), atol=1e-6)


def test_a_folder_of_the_previous_layout_loads(tiny_model, vocabulary, tmp_path):
    """The bundled model's config.json was written with 7 of the decoder's fields: the
    model's own configuration in model.keras is complete, and that is what loads."""
    save_model(tmp_path, tiny_model, vocabulary)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["decoder"] = {"embedding_dim": 16, "score": "additive"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    saved = load_model(tmp_path)
    assert saved.config["model"] == tiny_model.model_config.to_dict()


def test_kind_labels_and_files_that_do_not_fit_are_one_clear_error(tiny_model, vocabulary, ram,
                                                                    tmp_path):
    save_model(tmp_path / "ram", ram, ["a", "b", "c"])
    config = json.loads((tmp_path / "ram" / "config.json").read_text())
    for change, message in (({"kind": "transformer"}, "kind 'transformer'"),
                            ({"kind": "captioner"}, "has no vocab.json"),
                            ({"classes": ["a", "b"]}, "3 classes, .* has 2 names")):
        (tmp_path / "ram" / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(ModelError, match=message):
            load_model(tmp_path / "ram")
    (tmp_path / "ram" / "config.json").write_text("{oops")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(tmp_path / "ram")
    with pytest.raises(ModelError, match="class names do not match"):
        save_model(tmp_path / "other", ram, ["a", "b"])
    (tmp_path / "ram" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="holds a ram model, not a captioner"):
        ImageCaptioner.from_folder(tmp_path / "ram")
    save_model(tmp_path / "captioner", tiny_model, vocabulary)
    (tmp_path / "captioner" / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="Cannot load the model"):
        load_model(tmp_path / "captioner")


def test_the_bundled_default_model_loads_with_its_full_config():
    from captioner.commands import default_model_dir
    saved = load_model(default_model_dir())
    assert saved.kind == "captioner"
    written = json.loads(open(f"{default_model_dir()}/config.json").read())
    # written before the loss section: the loss weights are read from its decoder's
    assert "loss" not in written["model"] and "doubly_stochastic" in written["model"]["decoder"]
    from captioner.config import ModelConfig
    assert ModelConfig.from_dict(written["model"]) == saved.model.model_config
