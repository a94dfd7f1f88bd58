"""Attention supervision's targets (``captioner.data.regions``): the box of the object
each caption word names, on the model's grid, at that word's step."""

import numpy as np
import pytest

from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches
from captioner.data.regions import WordRegions, grounding_config, object_labels
from captioner.errors import DataError
from captioner.metrics.attention import box_coverage
from captioner.text import tokenize

GRID = (4, 4)  # the tiny model's: 32 px, three stride-2 stages


@pytest.fixture(scope="module")
def split(synthetic_coco):
    return load_coco_split(synthetic_coco, "train")


def test_each_named_shape_gets_its_box_at_its_step(split, vocabulary):
    records, instances = split
    regions = WordRegions(records, instances, GRID, max_length=12)
    batches = CaptionBatches(records, vocabulary, 32, batch_size=4, max_length=12,
                             shuffle=False, length_bucket=0, regions=regions)
    x, targets, mask = batches[0]
    assert x["regions"].shape == x["tokens"].shape + (16,)
    shapes = {o["category"] for objects in instances.values() for o in objects}
    for row, caption in enumerate(batches.plan.captions[0]):
        record = records[batches.plan.images[0][row]]
        words = tokenize(record.captions[0])[:12]
        named = [p for p, word in enumerate(words) if word in shapes]
        assert sorted(np.flatnonzero(x["regions"][row].sum(-1))) == named
        for position in named:  # this caption names each object once, by colour and shape
            colour = words[position - 1]
            box = [o["bbox"] for o in instances[record.image_id]
                   if o["category"] == words[position] and o["attributes"]["color"] == colour]
            np.testing.assert_allclose(
                x["regions"][row, position],
                box_coverage(box, (record.width, record.height), GRID).ravel(), atol=1e-6)
    named = sum(len(regions.named(c)) for c in range(sum(len(r.captions) for r in records)))
    assert named > len(records)  # each caption names one or more shapes


def test_boxes_without_image_sizes_are_refused(split):
    records, instances = split
    records = [type(r)(r.image_id, r.path, r.captions) for r in records]  # no width, height
    with pytest.raises(DataError, match="width and height"):
        WordRegions(records, instances, GRID, max_length=12)


def test_the_grounding_labels_are_the_named_objects_category_and_attributes(split, vocabulary):
    records, instances = split
    grounding = grounding_config(instances, vocabulary)
    groups = dict(grounding.groups())
    assert sorted(groups) == ["category", "color", "size"]
    regions = WordRegions(records, instances, GRID, max_length=12, grounding=grounding)
    batches = CaptionBatches(records, vocabulary, 32, batch_size=4, max_length=12,
                             shuffle=False, length_bucket=0, regions=regions)
    x, _, _ = batches[0]
    names = [name for name, _ in grounding.groups()]
    for row, caption in enumerate(batches.plan.captions[0]):
        record = records[batches.plan.images[0][row]]
        words = tokenize(record.captions[0])[:12]
        for position in range(x["tokens"].shape[1]):
            labels = x["objects"][row, position]
            if not x["regions"][row, position].any():
                assert (labels == -1).all()
                continue
            # the caption states the colour just before the shape; the size is the box's
            (obj,) = [o for o in instances[record.image_id]
                      if o["category"] == words[position]
                      and o["attributes"]["color"] == words[position - 1]]
            assert [groups[name][label] for name, label in zip(names, labels)] == \
                [obj["category"], obj["attributes"]["color"], obj["attributes"]["size"]]


def test_objects_that_disagree_leave_that_label_out(split, vocabulary):
    grounding = grounding_config(split[1], vocabulary)
    groups = dict(grounding.groups())
    red_small = {"category": "circle", "attributes": {"color": "red", "size": "small"}}
    red_large = {"category": "circle", "attributes": {"color": "red", "size": "large"}}
    labels = object_labels([red_small, red_large], grounding)
    assert list(labels) == [groups["category"].index("circle"), groups["color"].index("red"), -1]


def test_the_words_that_name_labels_and_only_those(split, vocabulary):
    grounding = grounding_config(split[1], vocabulary)
    columns = [f"{name}:{label}" for name, labels in grounding.groups() for label in labels]
    named = {vocabulary.words[word]: columns[column] for word, column in grounding.words}
    for word, label in named.items():
        assert label.split(":")[1] in (word, word.rstrip("s")) or \
            (word, label) in {("little", "size:small"), ("big", "size:large")}, (word, label)
    for word in ("a", "and", "on", "the"):
        assert word not in named
    assert {"circle", "red"} <= set(named)


def test_with_mentions_the_attribute_words_look_at_their_nouns_box(split, vocabulary):
    records, instances = split
    nouns = WordRegions(records, instances, GRID, max_length=12)
    mentions = WordRegions(records, instances, GRID, max_length=12, words="mentions")
    captions = np.arange(8)
    plain, both = nouns.arrays(captions, 13)["regions"], mentions.arrays(captions, 13)["regions"]
    supervised = plain.sum(-1) > 0  # the nouns, and the words of position phrases
    np.testing.assert_array_equal(both[supervised], plain[supervised])
    rows, positions = np.nonzero((both.sum(-1) > 0) & ~supervised)
    for row, position in zip(rows, positions):  # "a red circle": "red" gets the circle's box
        assert supervised[row, position + 1]
        np.testing.assert_array_equal(both[row, position], plain[row, position + 1])
    texts = [caption for record in records for caption in record.captions][:len(captions)]
    shapes = sum(len(mentions.lexicon.mentions(tokenize(text)[:12])) for text in texts)
    assert len(rows) == shapes  # one colour word per shape


def test_relation_words_look_at_the_object_they_relate_to_and_position_words_at_theirs():
    from captioner.data.regions import caption_regions
    from captioner.metrics.lexicon import ObjectLexicon
    lexicon = ObjectLexicon(["star", "circle"], {"color": ["red", "blue"]})
    star = {"category": "star", "bbox": [0, 0, 40, 40], "attributes": {"color": "red"}}
    circle = {"category": "circle", "bbox": [80, 80, 40, 40], "attributes": {"color": "blue"}}
    words = tokenize("a red star to the left of a blue circle on the right")
    regions = caption_regions(words, [star, circle], (120, 120), lexicon, (3, 3), 14)
    at_star, at_circle = (box_coverage([o["bbox"]], (120, 120), (3, 3)).ravel()
                          for o in (star, circle))
    for position, word in enumerate(words):
        expected = at_star if word == "star" else at_circle if word in (
            "to", "the", "left", "of", "circle", "on", "right") else 0 * at_star
        np.testing.assert_array_equal(regions[position], expected, err_msg=word)


def test_cell_labels_give_each_cell_the_smallest_box_over_it_or_nothing():
    from captioner.config import GroundingConfig
    from captioner.data.regions import cell_labels
    grounding = GroundingConfig(categories=["circle", "star"], attributes={"color": ["red"]},
                                cells=True)
    big = {"category": "circle", "bbox": [0, 0, 60, 60], "attributes": {"color": "red"}}
    small = {"category": "star", "bbox": [22, 22, 10, 10], "attributes": {}}  # in one cell
    labels = cell_labels([small, big], (120, 120), (4, 4), grounding).reshape(4, 4, 2)
    expected = np.full((4, 4, 2), -1)
    expected[:2, :2] = [0, 0]        # the circle covers the top left 2 x 2 cells
    expected[0, 0] = [1, -1]         # the star's centre (27, 27): its cell, no colour
    np.testing.assert_array_equal(labels, expected)


def test_position_openers_say_how_often_and_which_thirds_each_opener_opened():
    from captioner.data.regions import position_openers
    from captioner.data.vocab import Vocabulary
    from captioner.metrics.lexicon import ObjectLexicon
    captions = ["a star at the top", "a circle at the bottom left", "a star in the middle",
                "a star on the left", "a star on a dark background"]
    vocabulary = Vocabulary.build(captions)
    openers = {vocabulary.words[word]: (share, flags) for word, share, flags in
               position_openers(captions, ObjectLexicon(["star", "circle"]), vocabulary)}
    # flags: across (left, right, middle) x down (top, bottom, middle)
    assert openers["at"] == (1.0, [1, 1, 0, 1, 0, 0, 1, 0, 0])  # the top row, bottom left
    assert openers["in"] == (1.0, [0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert openers["on"] == (0.5, [1, 1, 1, 0, 0, 0, 0, 0, 0])


def test_cell_labels_mark_each_box_centre_where_the_head_reads_centres():
    from captioner.config import GroundingConfig
    from captioner.data.regions import cell_labels
    grounding = GroundingConfig(categories=["circle", "star"], cells=True, centres=True)
    big = {"category": "circle", "bbox": [0, 0, 60, 60]}  # centre (30, 30): cell (1, 1)
    small = {"category": "star", "bbox": [22, 22, 10, 10]}  # centre (27, 27): cell (0, 0)
    beside = {"category": "star", "bbox": [95, 95, 20, 20]}  # centre (105, 105): (3, 3)
    labels = cell_labels([small, big, beside], (120, 120), (4, 4), grounding)
    centres = labels[:, -1].reshape(4, 4)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = expected[1, 1] = expected[3, 3] = 1  # the two overlapping boxes apart
    np.testing.assert_array_equal(centres, expected)
    without = cell_labels([small, big, beside], (120, 120), (4, 4),
                          GroundingConfig(categories=["circle", "star"], cells=True))
    np.testing.assert_array_equal(labels[:, :-1], without)
