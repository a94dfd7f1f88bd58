"""The statement checks (``captioner.metrics.statements``): what each phrase claims, each
claim against hand-made scenes, the relation rules, and the scores over captions."""

import math

import pytest

from captioner.metrics.lexicon import ObjectLexicon
from captioner.metrics.statements import (
    check_caption,
    false_words,
    relation_holds,
    statement_scores,
    statements,
)

LEXICON = ObjectLexicon(["star", "circle", "square", "dog", "person"],
                        {"color": ["red", "blue", "green"], "size": ["small", "large"]})


def thing(category, x, y, w=10, h=10, **attributes):
    return {"category": category, "bbox": [x, y, w, h], "attributes": attributes}


# a 150 x 150 image: the thirds are 0-50, 50-100, 100-150
SCENE = [thing("star", 10, 10, color="red", size="small"),       # top left
         thing("circle", 120, 70, color="blue", size="large"),   # middle right
         thing("star", 65, 120, color="red", size="large")]      # bottom middle
SIZE = (150, 150)


def claims(caption, objects=SCENE, scene=None, rule="dominant"):
    return [(s.kind, s.claim, true) for s, true in
            check_caption(caption, objects, SIZE, LEXICON, scene, rule) if s.kind != "object"]


def test_positions_name_the_third_of_the_box_centre_on_the_axes_they_state():
    assert claims("a blue circle on the right") == [("position", ("right", None), True)]
    assert claims("a blue circle at the top") == [("position", (None, "top"), False)]
    assert claims("a blue circle in the middle") == [("position", ("middle", "middle"), False)]
    assert claims("a red star in the top left corner") == [("position", ("left", "top"), True)]
    assert claims("a red star at the bottom") == [("position", (None, "bottom"), True)]
    # either red star may be the one meant; no red star is on the right
    assert claims("a red star on the right") == [("position", ("right", None), False)]
    assert claims("on the left side of the image is a red star") == \
        [("position", ("left", None), True)]


def test_relations_judge_the_two_mentions_they_join():
    assert claims("a red star to the left of a blue circle") == \
        [("relation", "left", True)]
    assert claims("a blue circle to the left of a red star") == [("relation", "left", False)]
    assert claims("a blue circle to the right of a red star") == [("relation", "right", True)]
    # each red star is further across from the circle than above or below it
    assert claims("a red star above a blue circle") == [("relation", "above", False)]
    assert claims("a red star above a blue circle", rule="centre") == \
        [("relation", "above", True)]
    assert claims("a red star below a blue circle", rule="centre") == \
        [("relation", "below", True)]
    # a relation to something the data cannot place is no statement
    assert claims("a red star above the clouds") == []


def test_the_relation_rules_differ_where_the_axes_compete():
    a, b = thing("star", 0, 0), thing("circle", 30, 5)  # b: right by 30, below by 5
    assert relation_holds("left", a, b, "dominant") and not relation_holds("above", a, b)
    assert relation_holds("above", a, b, "centre") and relation_holds("left", a, b, "centre")
    assert relation_holds("left", a, b, "disjoint") and not relation_holds("above", a, b,
                                                                           "disjoint")
    assert claims("a red star above a blue circle", rule="disjoint") == \
        [("relation", "above", True)]


def test_counts_by_number_words_other_and_repetition():
    assert claims("two red stars and a blue circle") == [("count", 2, True)]
    assert claims("three red stars") == [("count", 3, False)]
    assert claims("three shapes : a red star") == [("count", 3, True)]
    assert claims("two shapes") == [("count", 2, False)]
    assert claims("a blue circle and two other shapes") == [("count", 2, True)]
    assert claims("a blue circle and one other shape") == [("count", 1, False)]
    assert claims("a single blue circle") == [("count", 1, True)]
    assert claims("a blue circle and a blue circle") == [("count", 2, False)]  # at least two
    assert claims("a red star and a red star") == [("count", 2, True)]


def test_sizes_and_backgrounds_where_the_data_records_them():
    assert claims("a large blue circle") == [("size", "large", True)]
    assert claims("a small blue circle") == [("size", "small", False)]
    assert claims("a small red star") == [("size", "small", True)]
    assert claims("a red star on a striped background") == []  # no scene recorded
    assert claims("a red star on a striped background", scene={"background": "striped"}) == \
        [("background", "striped", True)]
    assert claims("a red star on a dark background", scene={"background": "striped"}) == \
        [("background", "dark", False)]
    coco = [thing("dog", 10, 10), thing("dog", 120, 10)]  # no sizes: size words claim nothing
    assert claims("two dogs", coco) == [("count", 2, True)]


def test_false_words_mark_the_words_of_each_false_statement_with_its_kind():
    words = "a blue circle to the left of a red star at the right".split()
    marked = false_words(words, SCENE, SIZE, LEXICON)
    assert marked == {3: "relation", 4: "relation", 5: "relation", 6: "relation",
                      10: "position", 11: "position", 12: "position"}


def test_scores_give_each_kind_its_share_and_the_captions_all_true():
    samples = [("a red star to the left of a blue circle", SCENE, SIZE, None),
               ("a blue circle on the left", SCENE, SIZE, None),
               ("a green square", SCENE, SIZE, None)]
    scores = statement_scores(samples, LEXICON)
    assert scores["true_relation"] == 1.0 and scores["statements_relation"] == 1
    assert scores["true_position"] == 0.0 and scores["statements_position"] == 1
    assert scores["true_object"] == pytest.approx(3 / 4)
    assert scores["all_true"] == pytest.approx(1 / 3)
    assert math.isnan(scores["true_count"]) and scores["statements_count"] == 0
    assert [s.kind for s in statements("nothing to check here", LEXICON)] == []
