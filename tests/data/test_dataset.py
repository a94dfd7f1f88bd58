import os
import shutil

import numpy as np
import pytest

from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches, CaptionTable, ImageCache, plan_epoch
from captioner.data.images import load_image, load_resized
from captioner.data.vocab import Vocabulary
from captioner.errors import DataError
from tests.helpers import preprocess_image


class Record:
    def __init__(self, *captions):
        self.captions = list(captions)


@pytest.fixture(scope="module")
def records(synthetic_coco):
    return load_coco_split(synthetic_coco, "train", instances=False)[0]


def test_caption_table_shifts_targets_and_masks_padding():
    vocabulary = Vocabulary.build(["a red circle", "a square"])
    table = CaptionTable([Record("a red circle"), Record("a square", "a red circle a square")],
                         vocabulary, max_length=4)
    a, red, circle, square = (vocabulary.index[w] for w in ("a", "red", "circle", "square"))
    tokens, targets, mask = table.arrays(np.array([0, 1]), 5)
    assert tokens.tolist() == [[1, a, red, circle, 0], [1, a, square, 0, 0]]
    assert targets.tolist() == [[a, red, circle, 2, 0], [a, square, 2, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    assert table.lengths.tolist() == [3, 2, 4] and table.first.tolist() == [0, 1, 3]
    tokens, targets, _ = table.arrays(np.array([2]), 3)  # cut at 2 words, still ended
    assert tokens.tolist() == [[1, a, red]] and targets.tolist() == [[a, red, 2]]


def lengths_table(lengths, per_image=1):
    """A CaptionTable whose captions have the given lengths in words."""
    vocabulary = Vocabulary.build(["w"])
    words = [" ".join(["w"] * n) for n in lengths]
    records = [Record(*words[i:i + per_image]) for i in range(0, len(words), per_image)]
    return CaptionTable(records, vocabulary, max_length=40)


def test_an_epoch_plan_visits_every_image_once_in_full_batches_cut_to_their_captions():
    rng = np.random.default_rng(0)
    table = lengths_table(np.clip(rng.normal(11, 3, 1001 * 5).round(), 1, 40).astype(int),
                          per_image=5)
    plan = plan_epoch(table, batch_size=32, seed=3, epoch=2, length_bucket=4)
    assert plan.images.shape == plan.captions.shape == plan.weights.shape == (32, 32)
    real = plan.weights > 0
    assert sorted(plan.images[real].tolist()) == list(range(1001))  # each image once
    assert real.sum() == 1001 and (~real).sum() == 32 * 32 - 1001
    # filler rows copy rows of their own batch, so no batch holds another's images
    for row in np.flatnonzero((~real).any(axis=1)):
        assert set(plan.images[row][~real[row]]) <= set(plan.images[row][real[row]])
    # each caption is one of its image's, each batch as long as its longest + <end>, rounded
    assert np.all((plan.captions >= table.first[plan.images])
                  & (plan.captions < table.first[plan.images + 1]))
    longest = table.lengths[plan.captions].max(axis=1) + 1
    assert np.all(plan.steps >= longest) and np.all(plan.steps < longest + 4)
    assert np.all(plan.steps % 4 == 0) and len(set(plan.steps.tolist())) <= 6
    share, fixed = plan.padding_share(table)
    assert share < 0.2 and fixed > 0.65  # 41 steps for captions of about 11 words
    same = plan_epoch(table, batch_size=32, seed=3, epoch=2, length_bucket=4)
    other = plan_epoch(table, batch_size=32, seed=3, epoch=3, length_bucket=4)
    assert np.array_equal(plan.images, same.images) and np.array_equal(plan.captions,
                                                                       same.captions)
    assert not np.array_equal(plan.images, other.images)


def test_the_processes_of_a_run_share_every_batch_without_overlap(records, vocabulary):
    table = lengths_table(np.arange(1, 51) % 13 + 1)
    plan = plan_epoch(table, batch_size=8, seed=1, epoch=0)
    shards = [plan.shard(index, 4) for index in range(4)]
    for name in ("images", "captions", "weights"):  # in process order they are the batch
        assert np.array_equal(np.concatenate([getattr(s, name) for s in shards], axis=1),
                              getattr(plan, name))
    assert all(np.array_equal(s.steps, plan.steps) for s in shards)  # the same shapes
    whole = CaptionBatches(records[:10], vocabulary, 32, 4, 8, seed=2)
    second = CaptionBatches(records[:10], vocabulary, 32, 4, 8, seed=2)
    second.shard = (1, 2)
    (x, targets, mask), (x1, targets1, mask1) = whole[1], second[1]
    assert np.array_equal(x1["images"], x["images"][2:]) and np.array_equal(mask1, mask[2:])
    assert np.array_equal(targets1, targets[2:])
    assert second.padding_share() == whole.padding_share()  # the global batch's


def test_validation_plans_keep_the_order_and_the_first_caption():
    table = lengths_table([3, 5, 2, 7, 4, 6], per_image=2)
    plan = plan_epoch(table, batch_size=2, shuffle=False, length_bucket=0)
    assert plan.images.tolist() == [[0, 1], [2, 2]] and plan.weights.tolist() == [[1, 1], [1, 0]]
    assert plan.captions.tolist() == [[0, 2], [4, 4]] and plan.steps.tolist() == [41, 41]


def test_training_batches_use_the_inference_preprocessing(records, vocabulary):
    batches = CaptionBatches(records, vocabulary, 24, batch_size=5, max_length=12, seed=1)
    x, y, w = batches[0]
    index, caption = batches.plan.images[0, 0], batches.plan.captions[0, 0]
    assert x["images"].dtype == np.uint8
    np.testing.assert_array_equal(x["images"][0], load_resized(records[index].path, 24))
    np.testing.assert_allclose(x["images"][0] / 127.5 - 1.0,
                               preprocess_image(load_image(records[index].path), 24), atol=1e-6)
    steps = batches.plan.steps[0]
    assert x["images"].shape == (5, 24, 24, 3) and x["tokens"].shape == y.shape == w.shape == \
        (5, steps)
    text = records[index].captions[caption - batches.table.first[index]]
    assert vocabulary.decode(y[0]) == vocabulary.decode(vocabulary.encode(text)[:12])


@pytest.mark.parametrize("supervised", [False, True, "grounded"],
                         ids=["plain", "supervised", "grounded"])
def test_the_tf_data_pipeline_gives_the_python_pipelines_batches(synthetic_coco, records,
                                                                 vocabulary, supervised):
    """Same plan, same decoding: images, tokens, attention supervision's regions and the
    grounding head's labels identical, epoch after epoch."""
    from captioner.data.regions import WordRegions, grounding_config
    from captioner.data.tf_pipeline import TFCaptionBatches
    instances = load_coco_split(synthetic_coco, "train")[1]
    grounding = grounding_config(instances, vocabulary) if supervised == "grounded" else None
    regions = WordRegions(records, instances, (3, 3), max_length=12,
                          grounding=grounding) if supervised else None
    python = CaptionBatches(records, vocabulary, 24, batch_size=5, max_length=12, seed=2,
                            regions=regions)
    tf_data = TFCaptionBatches(records, vocabulary, 24, batch_size=5, max_length=12, seed=2,
                               regions=regions)
    for epoch in (0, 3):
        python.set_epoch(epoch)
        tf_data.set_epoch(epoch)
        batches = list(tf_data.fit_input().as_numpy_iterator())
        assert len(batches) == len(python) == 5
        for index, (x, y, w) in enumerate(batches):
            expected_x, expected_y, expected_w = python[index]
            assert sorted(x) == sorted(expected_x)
            for key in x:
                np.testing.assert_array_equal(x[key], expected_x[key])
            np.testing.assert_array_equal(y, expected_y)
            np.testing.assert_array_equal(w, expected_w)
            if supervised:  # the shapes the captions name: about one word in three
                assert x["regions"].shape == x["tokens"].shape + (9,)
                assert 0.1 < (x["regions"].sum(-1) > 0).sum() / w.sum() < 0.6
            if grounding is not None:  # labelled where the regions are
                assert x["objects"].dtype == np.int32
                np.testing.assert_array_equal(x["objects"][..., 0] >= 0,
                                              x["regions"].sum(-1) > 0)


def test_an_unreadable_image_in_the_middle_is_skipped_and_counted_or_refused_up_front(
        records, vocabulary, tmp_path, capsys):
    from captioner.data.tf_pipeline import TFCaptionBatches
    copied = []
    for record in records[:9]:
        path = tmp_path / os.path.basename(record.path)
        shutil.copy(record.path, path)
        copied.append(type(record)(record.image_id, str(path), record.captions))
    broken = copied[4].path
    with open(broken, "r+b") as handle:
        handle.truncate(200)  # a truncated PNG
    batches = TFCaptionBatches(copied, vocabulary, 16, batch_size=4, max_length=12, seed=0)
    weights = {}
    for x, _, w in batches.fit_input().as_numpy_iterator():
        pass  # a whole epoch runs
    plan = batches.plan
    for row in range(len(plan.steps)):
        x, _, w = batches[row]
        for column, index in enumerate(plan.images[row]):
            weights.setdefault(int(index), []).append(w[column].max())
    assert list(batches.bad) == [4] and broken in batches.bad[4]
    assert max(weights[4]) == 0 and all(max(weights[i]) == 1 for i in weights if i != 4)
    assert capsys.readouterr().err.count(broken) == 1  # named once, however often it is met
    refusing = CaptionBatches(copied, vocabulary, 16, batch_size=4, max_length=12,
                              bad_images="error")
    with pytest.raises(DataError, match=broken):
        refusing.images.check(progress=False)


def test_the_image_cache_keeps_uint8_within_its_budget(records):
    cache = ImageCache([r.path for r in records[:6]], 16, budget_bytes=16 * 16 * 3 * 4)
    arrays = cache.batch(range(6))[0]
    assert arrays.dtype == np.uint8 and len(cache.cache) == 4
    np.testing.assert_array_equal(cache.batch([5])[0][0], arrays[5])  # decoded again
