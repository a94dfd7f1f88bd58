import numpy as np
import pytest

from captioner.metrics import ObjectLexicon, attention_correctness
from captioner.metrics.attention import box_coverage

LEXICON = ObjectLexicon(["circle", "square", "triangle"], {"color": ["red", "blue"]})


def test_box_coverage_is_exact_on_square_and_non_square_images():
    np.testing.assert_allclose(box_coverage([[25, 0, 50, 50]], (100, 100), (2, 2)),
                               [[0.5, 0.5], [0, 0]])
    np.testing.assert_allclose(box_coverage([[50, 0, 100, 50]], (200, 100), (2, 2)),
                               [[0.5, 0.5], [0, 0]])
    # two overlapping boxes count their shared area once: 2500 + 2500 - 625 of 10000
    np.testing.assert_allclose(box_coverage([[0, 0, 50, 50], [25, 25, 50, 50]], (100, 100),
                                            (1, 1)), [[0.4375]])
    # a box past the border is clipped to the image
    np.testing.assert_allclose(box_coverage([[-10, -10, 60, 60]], (100, 100), (2, 2)),
                               [[1, 0], [0, 0]])


def test_attention_correctness_equals_the_hand_computed_value():
    objects = [{"category": "circle", "attributes": {"color": "red"}, "bbox": [25, 0, 50, 50]},
               {"category": "square", "attributes": {"color": "blue"}, "bbox": [0, 50, 50, 50]},
               {"category": "square", "attributes": {"color": "blue"}, "bbox": [50, 50, 25, 25]}]
    words = "a red circle and two squares and a triangle".split()
    alphas = np.full((len(words), 4), 0.25)
    alphas[2] = [0.6, 0.2, 0.1, 0.1]   # "circle": half of cells 0 and 1 -> 0.3 + 0.1
    alphas[5] = [0.0, 0.0, 0.5, 0.5]   # "squares": all of cell 2, a quarter of 3 -> 0.625
    result = attention_correctness([(words, alphas, objects, (100, 100))], LEXICON, (2, 2))
    assert result["words"] == 2        # "triangle" is not in the image: not counted
    assert result["attention_correctness"] == pytest.approx((0.4 + 0.625) / 2)
    assert result["uniform_baseline"] == pytest.approx((0.25 + 0.3125) / 2)
    assert result["ratio"] == pytest.approx(0.5125 / 0.28125)


def test_the_box_of_the_object_with_the_stated_attribute_is_used():
    objects = [{"category": "circle", "attributes": {"color": "red"}, "bbox": [0, 0, 50, 50]},
               {"category": "circle", "attributes": {"color": "blue"}, "bbox": [50, 50, 50, 50]}]
    alphas = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1.0]])  # looks at the blue one
    blue = attention_correctness([("a blue circle", alphas, objects, (100, 100))], LEXICON, (2, 2))
    red = attention_correctness([("a red circle", alphas, objects, (100, 100))], LEXICON, (2, 2))
    assert blue["attention_correctness"] == 1.0 and red["attention_correctness"] == 0.0
