"""Training the grounding head: it learns what is at the named words' places, and
train.py gives it, its agreement score and grounded decoding where the data has boxes."""

import json

import numpy as np
import pytest
from keras import ops

from captioner.config import TrainConfig
from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches
from captioner.data.regions import WordRegions, grounding_config
from captioner.models.captioner import create_captioner
from captioner.training.loop import compile_for_training
from tests.conftest import tiny_config
from tests.helpers import run_command

GRID = (4, 4)


@pytest.mark.backend
@pytest.mark.slow  # trains the head
def test_the_head_learns_the_category_and_colour_at_the_named_words(synthetic_coco,
                                                                     vocabulary):
    records, instances = load_coco_split(synthetic_coco, "train")
    config = tiny_config(vocabulary, attention_supervision=1.0, grounding=1.0)
    config.grounding = grounding_config(instances, vocabulary)
    regions = WordRegions(records, instances, GRID, max_length=12, grounding=config.grounding)
    batches = CaptionBatches(records, vocabulary, 32, batch_size=8, max_length=12,
                             shuffle=False, length_bucket=0, regions=regions)
    model = create_captioner(config, seed=1)
    compile_for_training(model, TrainConfig.of(epochs=1, learning_rate=5e-3), 60)

    def accuracy():
        right = labelled = 0
        for index in range(len(batches)):
            x, _, mask = batches[index]
            logits = model(x)["grounding"]
            predicted = ops.convert_to_numpy(model.grounding.predictions(logits))
            known = (x["objects"] >= 0) & (mask[..., None] > 0)
            right += np.array([(predicted[..., g] == x["objects"][..., g])[known[..., g]].sum()
                          for g in range(known.shape[-1])])
            labelled += known.sum((0, 1))
        return right / labelled  # per group: category, colour, size
    before = accuracy()
    for _ in range(15):
        for index in range(len(batches)):
            x, y, w = batches[index]
            model.train_on_batch(x, y, sample_weight=w)
    after = accuracy()
    assert after[0] > 0.6 and after[1] > 0.6, (before, after)  # 4 shapes, 5 colours
    assert after[0] > before[0] + 0.2 and after[1] > before[1] + 0.2, (before, after)


@pytest.mark.slow
def test_train_py_gives_a_head_its_agreement_and_grounded_decoding(synthetic_coco, tmp_path):
    out = tmp_path / "model"
    from captioner.commands.caption import main as caption
    from captioner.commands.train import main as train
    result = run_command(train, "--coco", synthetic_coco, "--out", out, "--epochs", 2,
                         "--batch-size", 8, "--width", 8, "--lstm-units", 32,
                         "--embedding-dim", 16, "--attention-units", 16,
                         "--validation-images", 3, "--max-words", 8)
    assert result.returncode == 0, result.stderr
    assert "grounding head (lambda 1.0)" in result.stderr
    with open(out / "metrics.json") as handle:
        test = json.load(handle)["test"]
    # a share of the category words written (none, NaN, for a model this young)
    assert 0.0 <= test["head_agreement"] <= 1.0 if test["head_words"] else \
        np.isnan(test["head_agreement"])
    card = (out / "MODEL_CARD.md").read_text()
    assert "grounding head: 4 categories" in card
    scores = {}
    for weight in (0, 5):
        result = run_command(caption, "--coco", synthetic_coco, "--split", "test",
                             "--model", out, "--json", "--grounded", weight,
                             "--out", tmp_path / f"evaluation{weight}")
        assert result.returncode == 0, result.stderr
        scores[weight] = json.loads(result.stdout)["scores"]
    if scores[0]["head_words"] and scores[5]["head_words"]:  # grounded: agrees more
        assert scores[5]["head_agreement"] >= scores[0]["head_agreement"]
    refused = run_command(caption, "--coco", synthetic_coco, "--split", "test",
                          "--grounded", 1, "--out", tmp_path / "bundled")
    assert refused.returncode == 2 and "grounding head" in refused.stderr.strip()
    assert len(refused.stderr.strip().splitlines()) == 1
