import pytest

from captioner.metrics import ObjectLexicon, object_grounding
from captioner.metrics.grounding import ERROR_KINDS


def obj(category, color, box=(0, 0, 10, 10)):
    return {"category": category, "attributes": {"color": color}, "bbox": list(box)}


INSTANCES = {
    1: [obj("circle", "red"), obj("square", "blue")],
    2: [obj("triangle", "green")],
    3: [obj("circle", "red"), obj("circle", "red"), obj("square", "blue")],
}
LEXICON = ObjectLexicon(["circle", "square", "triangle"], {"color": ["red", "blue", "green"]})


def test_grounding_figures_equal_the_hand_counted_ones():
    captions = {1: "a red circle and a blue square",   # 2 of 2 mentions right; 2 of 2 named
                2: "a red triangle and a circle",      # wrong colour, absent shape: 0 of 2
                3: "two red circles"}                  # 1 of 1 right; 2 of 3 objects named
    scores = object_grounding(captions, INSTANCES, LEXICON)
    assert scores["mentions"] == 5 and scores["objects"] == 6 and scores["captions"] == 3
    assert scores["object_precision"] == pytest.approx(3 / 5)
    assert scores["chair_i"] == pytest.approx(2 / 5)
    assert scores["object_recall"] == pytest.approx(4 / 6)
    assert scores["chair_s"] == pytest.approx(1 / 3)


def test_a_repeated_or_synonymous_mention_counts_once():
    scores = object_grounding({1: "a red circle , a red disc and a red circle"}, INSTANCES, LEXICON)
    assert scores["mentions"] == 1 and scores["object_precision"] == 1.0
    assert scores["object_recall"] == pytest.approx(1 / 2)


def test_an_image_without_instances_makes_every_mention_a_hallucination():
    scores = object_grounding({9: "a square"}, INSTANCES, LEXICON)
    assert scores["object_precision"] == 0.0 and scores["chair_s"] == 1.0


def test_each_absent_mention_gets_the_kind_of_its_error():
    # image 1 holds a red circle and a blue square
    cases = {"a blue circle": "mispaired",        # circle and blue both there, apart
             "a green circle": "wrong_attribute",  # a circle, but nothing green
             "a red triangle": "wrong_category",   # red is a circle: right colour, wrong shape
             "a green triangle": "invented",       # neither
             "a triangle": "invented"}             # no attribute: cannot be the wrong shape
    for caption, kind in cases.items():
        scores = object_grounding({1: caption}, INSTANCES, LEXICON)
        assert scores["mentions"] == 1
        assert {k: scores[f"absent_{k}"] for k in ERROR_KINDS} == \
            {k: float(k == kind) for k in ERROR_KINDS}, caption


def test_the_kinds_are_shares_of_all_mentions_and_add_up_to_chair_i():
    # right, mis-paired, invented
    captions = {1: "a red circle , a blue circle and a green triangle",
                2: "a green square and a red triangle",   # wrong category, wrong attribute
                3: "a blue circle"}                       # mis-paired
    scores = object_grounding(captions, INSTANCES, LEXICON)
    assert scores["mentions"] == 6
    assert scores["absent_mispaired"] == pytest.approx(2 / 6)
    assert scores["absent_invented"] == pytest.approx(1 / 6)
    assert scores["absent_wrong_category"] == pytest.approx(1 / 6)
    assert scores["absent_wrong_attribute"] == pytest.approx(1 / 6)
    assert sum(scores[f"absent_{k}"] for k in ERROR_KINDS) == pytest.approx(scores["chair_i"])
