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


def test_the_scores_say_which_share_of_each_kind_of_statement_holds(test_split):
    """Each image captioned by its own first reference (every statement true) and by that
    caption with a false count in front: the counts' share and the captions all true fall
    by what the checks say of each caption, and the text shows them."""
    from captioner.evaluation import format_scores, score_captions
    from captioner.metrics.lexicon import ObjectLexicon
    from captioner.metrics.statements import check_caption
    from captioner.results import Caption
    records, instances = test_split
    records = records[:12]

    def caption(words):
        return Caption(" ".join(words), words, [0.5] * len(words), -1.0, -1.0, True,
                       np.full((len(words), 2, 2), 0.25, np.float32))
    lexicon = ObjectLexicon.from_instances(instances, instances.categories)
    for wrong in (False, True):
        captions = {}
        for record in records:
            words = record.captions[0].replace(",", " ,").split()
            captions[record.image_id] = [caption((["four", "shapes", ":"] if wrong else [])
                                                 + words)]
        scores, _ = score_captions(records, captions, instances, (2, 2), metrics=("CIDEr",))
        checked = [check_caption(captions[r.image_id][0].words, instances[r.image_id],
                                 (r.width, r.height), lexicon) for r in records]
        counts = [true for found in checked for s, true in found if s.kind == "count"]
        assert scores["statements_count"] == len(counts) >= (len(records) if wrong else 0)
        assert scores["all_true"] == pytest.approx(
            np.mean([all(true for _, true in found) for found in checked]))
        if wrong:  # one to three shapes: "four shapes" is false of every image
            assert scores["true_count"] < 1.0 and scores["all_true"] < 1.0
            assert "counts true" in format_scores(scores)
        else:
            assert scores["all_true"] == 1.0
