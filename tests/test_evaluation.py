"""Captioning an annotated split and scoring it (``ImageCaptioner.evaluate``,
``captioner.evaluation``): unreadable images are left out and listed, the scores are
pycocoevalcap's of the best captions, whichever way the split is given."""

import numpy as np
import pytest

from captioner.data.coco import load_coco_split
from captioner.errors import DataError
from captioner.evaluation import ImageLoader
from captioner.tasks import ImageCaptioner

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def test_split(synthetic_coco):
    return load_coco_split(synthetic_coco, "test")


def test_the_image_loader_lists_what_it_cannot_read(test_split, tmp_path):
    records, _ = test_split
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    records = [records[0], type(records[1])(records[1].image_id, str(broken),
                                            records[1].captions)]
    loader = ImageLoader(records, 32)
    batch = loader(np.arange(2))["images"]
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.uint8
    assert list(loader.unreadable) == [1] and "broken.png" in loader.unreadable[1]
    assert not batch[1].any() and batch[0].any()


def test_evaluate_scores_the_readable_images_and_says_which_it_left_out(
        tiny_model, vocabulary, test_split, tmp_path):
    records, instances = test_split
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    damaged = records[:3] + [type(records[3])(records[3].image_id, str(broken),
                                              records[3].captions)]
    task = ImageCaptioner(tiny_model, vocabulary)
    evaluation = task.evaluate(damaged, instances, batch_size=2, metrics=("BLEU", "CIDEr"),
                               tokenizer="captioner")
    assert evaluation.scores["images"] == 3
    assert list(evaluation.notes["unreadable"]) == [str(broken)]
    assert [r["image_id"] for r in evaluation.results] == [r.image_id for r in records[:3]]
    for result in evaluation.results:  # the results are the best captions
        assert result["caption"] == evaluation.captions[result["image_id"]][0].caption
    assert {"BLEU-4", "CIDEr", "object_precision", "attention_correctness"} <= set(
        evaluation.scores)
    only_broken = [damaged[3]]
    with pytest.raises(DataError, match="None of the 1 images can be read"):
        task.evaluate(only_broken, instances, metrics=("BLEU",), tokenizer="captioner")


def test_a_split_scores_alike_given_as_records_or_as_a_coco_folder(tiny_model, vocabulary,
                                                                    synthetic_coco, test_split):
    from captioner.config import SearchConfig
    records, instances = test_split
    task = ImageCaptioner(tiny_model, vocabulary)
    direct = task.evaluate(records, instances, metrics=("BLEU",), tokenizer="captioner",
                           search=SearchConfig(beam=2))
    through = task.evaluate(coco=synthetic_coco, split="test", search=SearchConfig(beam=2),
                            tokenizer="captioner", metrics=("BLEU",))
    assert through.results == direct.results
