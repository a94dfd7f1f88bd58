"""The Transformer decoder inside everything else: its options on the command line,
attention supervision, the feature cache, exact resume, and train.py -> caption.py
(text, JSON, heat maps, viewer, --coco scores) -> self-critical fine-tuning."""

import json
import os

import numpy as np
import pytest

from captioner.config import ModelConfig, TrainConfig, TransformerConfig, preset
from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches
from captioner.data.regions import WordRegions
from captioner.models.captioner import create_captioner
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.loop import compile_for_training
from tests.helpers import run_command
from tests.training.test_attention_supervision import GRID, attention_inside

TINY = ["--decoder", "transformer", "--layers", "1", "--heads", "2", "--model-width", "16",
        "--ff-width", "32", "--image-size", "32", "--width", "8", "--batch-size", "8",
        "--max-words", "8", "--validation-images", "3", "--no-progress"]


def tiny_transformer(vocabulary=None, **decoder):
    config = preset("tiny")
    config.decoder = TransformerConfig(**{**dict(layers=1, heads=2, model_width=16,
                                                 ff_width=32, dropout=0.0), **decoder})
    if vocabulary is not None:
        config.vocab_size, config.vocab_hash, config.max_length = \
            len(vocabulary), vocabulary.hash, 12
    return config


def train_py(*args):
    from captioner.commands.train import main
    return run_command(main, *args)


def test_a_model_config_names_its_decoder_kind_and_round_trips():
    config = ModelConfig.from_dict({"decoder": {"kind": "transformer", "layers": 3}})
    assert isinstance(config.decoder, TransformerConfig) and config.decoder.layers == 3
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert "Transformer decoder, 3 layers" in config.decoder.summary()
    from captioner.errors import ConfigError
    with pytest.raises(ConfigError, match="lstm_units"):
        ModelConfig.from_dict({"decoder": {"kind": "transformer", "lstm_units": 8}})
    with pytest.raises(ConfigError, match="heads must divide model_width"):
        TransformerConfig(heads=3)


@pytest.mark.parametrize("args, expected", [
    (["--decoder", "transformer", "--lstm-units", "64"],
     "--lstm-units not an option of --decoder transformer"),
    (["--layers", "2"], "--layers not an option of --decoder lstm"),
])
def test_another_decoders_options_are_refused_in_one_line(synthetic_coco, tmp_path, args,
                                                          expected):
    result = train_py("--coco", synthetic_coco, "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and expected in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.backend
@pytest.mark.slow  # the LSTM's twin runs in the default pass
def test_supervision_moves_the_transformers_map_onto_the_named_objects(synthetic_coco,
                                                                       vocabulary):
    records, instances = load_coco_split(synthetic_coco, "train")
    regions = WordRegions(records, instances, GRID, max_length=12)
    batches = CaptionBatches(records, vocabulary, 32, batch_size=8, max_length=12,
                             shuffle=False, length_bucket=0, regions=regions)
    inside = {}
    for weight in (0.0, 5.0):
        config = tiny_transformer(vocabulary)
        config.loss.attention_supervision = weight
        model = create_captioner(config, seed=1)
        compile_for_training(model, TrainConfig.of(epochs=1, learning_rate=5e-3), 60)
        for _ in range(8):
            for index in range(len(batches)):
                x, y, w = batches[index]
                model.train_on_batch(x, y, sample_weight=w)
        inside[weight] = attention_inside(model, batches[0])
    assert inside[5.0] > 1.5 * inside[0.0], inside


def make_trainer(synthetic_coco, out, epochs, dropout=0.0, frozen=False):
    train, _ = load_coco_split(synthetic_coco, "train")
    val, _ = load_coco_split(synthetic_coco, "val")
    model_config = tiny_transformer(dropout=dropout)
    model_config.encoder.fine_tune = not frozen
    train_config = TrainConfig.of(epochs=epochs, batch_size=7, learning_rate=5e-3, seed=4,
                                  validation_images=3, max_words=8, length_bucket=8)
    return CaptionTrainer(TrainingData(train, val[:3], "test data"), str(out), model_config,
                          train_config, feature_dir=str(out) + "-features")


@pytest.mark.backend
@pytest.mark.slow  # trains twice
def test_a_frozen_encoder_trains_the_transformer_on_cached_features_as_on_images(
        synthetic_coco, tmp_path):
    histories = {}
    for cached in (True, False):
        trainer = make_trainer(synthetic_coco, tmp_path / f"cached{cached}", 1, frozen=True)
        trainer.train_config.run.validation_images = 0
        trainer.data.val = []
        trainer.feature_cache = cached
        histories[cached] = trainer.run(progress=False)
    assert histories[True][0]["loss"] == pytest.approx(histories[False][0]["loss"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.backend
def test_a_transformer_run_resumes_exactly(synthetic_coco, tmp_path):
    from tests.training.test_captioning import weights_of
    straight = make_trainer(synthetic_coco, tmp_path / "straight", 2, dropout=0.3)\
        .run(progress=False)
    make_trainer(synthetic_coco, tmp_path / "split", 2, dropout=0.3).run(progress=False,
                                                                           stop_after=1)
    resumed = make_trainer(synthetic_coco, tmp_path / "split", 2, dropout=0.3)\
        .run(resume=True, progress=False)
    assert resumed[1]["loss"] == pytest.approx(straight[1]["loss"], abs=1e-6)
    for a, b in zip(weights_of(tmp_path / "straight"), weights_of(tmp_path / "split")):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_train_py_transformer_captions_scores_and_fine_tunes(synthetic_coco, tmp_path):
    from captioner.commands.caption import main as caption_main
    out = str(tmp_path / "model")
    result = train_py("--coco", synthetic_coco, "--out", out, "--epochs", "2", *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(out, "config.json")) as handle:
        assert json.load(handle)["model"]["decoder"]["kind"] == "transformer"
    assert "Transformer decoder" in open(os.path.join(out, "MODEL_CARD.md")).read()
    images = os.path.join(synthetic_coco, "test2017")
    first = os.path.join(images, sorted(os.listdir(images))[0])
    # two epochs of a tiny model: its likeliest caption may be the empty one, which beam
    # search (ranking by total log-probability) would return; at least a word to map
    shown = run_command(caption_main, first, "--model", out, "--json", "--beam", "3",
                        "--min-length", "1", "--attention-dir", str(tmp_path / "maps"),
                        "--html", str(tmp_path / "html"))
    assert shown.returncode == 0, shown.stderr[-2000:]
    answer = json.loads(shown.stdout)[0]
    assert answer["caption"] and os.path.isfile(answer["attention_png"])
    page = open(sorted((tmp_path / "html" / "data").glob("page_*.js"))[0]).read()
    assert '"heads":[[' in page  # every layer's and head's maps for the viewer
    scored = run_command(caption_main, "--coco", synthetic_coco, "--split", "test", "--model",
                         out, "--out", str(tmp_path / "scores"))
    assert scored.returncode == 0, scored.stderr[-2000:]
    tuned = train_py("--coco", synthetic_coco, "--init", out, "--out", str(tmp_path / "sc"),
                     "--scst", "--scst-samples", "2", "--epochs", "1", "--batch-size", "8",
                     "--no-progress")
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    with open(tmp_path / "sc" / "metrics.json") as handle:
        assert "reward" in json.load(handle)["history"][0]
