"""Attention supervision from boxes (Liu et al. 2017): the targets a batch carries, the
loss against NumPy, and that training with it moves the attention onto the named objects."""

import os

import numpy as np
import pytest
from keras import ops

from captioner.config import TrainConfig, preset
from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches
from captioner.data.regions import WordRegions
from captioner.errors import DataError
from captioner.models.captioner import create_captioner
from captioner.models.losses import outside_attention
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.loop import compile_for_training
from tests.conftest import tiny_config

GRID = (4, 4)  # the tiny model's: 32 px, three stride-2 stages


def test_outside_attention_matches_numpy(rng):
    alphas = rng.dirichlet(np.ones(6), size=(3, 5)).astype("float32")  # (3, 5, 6)
    regions = np.zeros((3, 5, 6), "float32")
    regions[0, 1, :2] = [1.0, 0.5]
    regions[1, 3, 4] = 0.25
    regions[2, 4, :] = 1.0  # on a padded step: not counted
    mask = np.ones((3, 5), "float32")
    mask[2, 3:] = 0.0
    words = [(0, 1), (1, 3)]
    expected = np.mean([1.0 - (alphas[b, t] * regions[b, t]).sum() for b, t in words])
    np.testing.assert_allclose(
        ops.convert_to_numpy(outside_attention(alphas, regions, mask)), expected, rtol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(outside_attention(alphas, regions, mask, normaliser=4.0)),
        expected * 2 / 4, rtol=1e-6)


@pytest.fixture(scope="module")
def split(synthetic_coco):
    return load_coco_split(synthetic_coco, "train")


def attention_inside(model, batch):
    """Mean attention mass inside the named boxes, over the named words of ``batch``."""
    x, _, mask = batch
    alphas = ops.convert_to_numpy(model(x)["alphas"])
    named = (x["regions"].sum(-1) > 0) & (mask > 0)
    return float((alphas * x["regions"]).sum(-1)[named].mean())


@pytest.mark.backend
@pytest.mark.slow  # trains twice
def test_supervision_moves_the_attention_onto_the_named_objects(split, vocabulary):
    records, instances = split
    regions = WordRegions(records, instances, GRID, max_length=12)
    batches = CaptionBatches(records, vocabulary, 32, batch_size=8, max_length=12,
                             shuffle=False, length_bucket=0, regions=regions)
    inside = {}
    for weight in (0.0, 5.0):
        model = create_captioner(tiny_config(vocabulary, attention_supervision=weight), seed=1)
        compile_for_training(model, TrainConfig.of(epochs=1, learning_rate=5e-3), 60)
        for _ in range(12):
            for index in range(len(batches)):
                x, y, w = batches[index]
                model.train_on_batch(x, y, sample_weight=w)
        inside[weight] = attention_inside(model, batches[0])
    uniform = float(batches[0][0]["regions"].sum(-1)[batches[0][0]["regions"].sum(-1) > 0]
                    .mean() / 16)
    assert inside[0.0] < 1.5 * uniform  # unsupervised, it has not found the shapes yet
    assert inside[5.0] > 2 * max(inside[0.0], uniform), (inside, uniform)


@pytest.mark.backend
def test_train_with_supervision_reads_the_boxes_or_says_why_not(synthetic_coco, split,
                                                                 tmp_path):
    records, instances = split
    val, val_instances = load_coco_split(synthetic_coco, "val")
    model_config = preset("tiny")
    model_config.loss.attention_supervision = 1.0
    train_config = TrainConfig.of(epochs=1, batch_size=8, validation_images=3, max_words=8)
    trainer = CaptionTrainer(TrainingData(records, val[:3], "test data", val_instances,
                                          instances), str(tmp_path / "run"), model_config,
                             train_config)
    trainer.run(progress=False)
    assert "regions" in trainer.train_batches[0][0]
    unboxed = CaptionTrainer(TrainingData(records, val[:3], "test data"),
                             str(tmp_path / "unboxed"), preset("tiny"), train_config)
    unboxed.model_config.loss.attention_supervision = 1.0
    with pytest.raises(DataError, match="instances"):
        unboxed.run(progress=False)


@pytest.mark.slow
def test_train_supervises_attention_by_default_wherever_there_are_boxes(synthetic_coco,
                                                                        tmp_path):
    """train() with the default attention_supervision and grounding (None): 1.0 on a COCO
    folder with an instances file, 0 on the same folder without one (and no head)."""
    import json
    import shutil

    from captioner.training.run import train
    bare = tmp_path / "bare"
    shutil.copytree(synthetic_coco, bare)
    for name in os.listdir(bare / "annotations"):
        if name.startswith("instances_"):
            os.remove(bare / "annotations" / name)
    for data, expected in ((synthetic_coco, 1.0), (str(bare), 0.0)):
        config = preset("tiny")
        assert config.loss.attention_supervision is None
        out = tmp_path / f"run{expected}"
        train(str(out), coco=data, model_config=config, progress=False,
              train_config=TrainConfig.of(epochs=1, batch_size=8, validation_images=2,
                                       max_words=8), splits=("train", "val", "none"))
        with open(out / "config.json") as handle:
            saved = json.load(handle)["model"]
        assert saved["loss"]["attention_supervision"] == expected
        assert saved["loss"]["grounding"] == expected  # and the grounding head, alike
        assert bool(saved["grounding"]["categories"]) == bool(expected)
