"""Diversity scores against counts made by hand, and a split that says one sentence for
every image scored as the degenerate case it is."""

import pytest

from captioner.metrics.diversity import diversity_scores, repeats_ngram

CAPTIONS = [["a", "red", "circle"], ["a", "red", "circle", "a", "red", "circle"],
            ["two", "blue", "stars"]]


def test_each_score_is_the_count_it_names():
    scores = diversity_scores(CAPTIONS, training=[["a", "red", "circle"], ["a", "cat"]])
    # words: 3 + 6 + 3 = 12; distinct: a red circle two blue stars = 6
    # bigrams: 2 + 5 + 2 = 9; distinct: (a red) (red circle) (circle a) (two blue)
    # (blue stars) = 5
    assert scores == pytest.approx({"distinct_1": 6 / 12, "distinct_2": 5 / 9,
                                    "vocabulary": 6.0, "mean_length": 4.0,
                                    "repeated_ngrams": 1 / 3, "novel": 2 / 3})


def test_one_sentence_for_every_image_is_as_undiverse_as_it_gets():
    same = [["a", "shape", "on", "a", "background"]] * 50
    scores = diversity_scores(same, training=same[:1])
    assert scores["distinct_1"] == pytest.approx(4 / 250)
    assert scores["novel"] == 0.0 and scores["vocabulary"] == 4.0
    assert "novel" not in diversity_scores(same)  # no training captions: not scored
    assert diversity_scores([])["distinct_2"] == 0.0


def test_a_repeated_ngram_is_one_said_twice_anywhere_in_the_caption():
    assert repeats_ngram("a red circle and a red circle".split())
    assert not repeats_ngram("a red circle and a blue circle".split())
    assert repeats_ngram("a a".split(), n=1) and not repeats_ngram([], n=3)
