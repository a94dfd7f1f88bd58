"""Grounded decoding of number words (``captioner.search.counting``): connected
components against a flood fill, the counts of a head's cell readings, and the scores
along a caption against the module's formulas."""

import numpy as np
import pytest
from keras import ops

from captioner.config import GroundingConfig
from captioner.data.vocab import SPECIAL_TOKENS, Vocabulary
from captioner.search.counting import PENALTY, NumberWords, components

pytestmark = pytest.mark.backend

WORDS = ["a", "and", "two", "three", "single", "other", "shapes", "red", "blue", "star",
         "stars", "circle", "circles"]
VOCABULARY = Vocabulary(list(SPECIAL_TOKENS) + WORDS)
ID = VOCABULARY.index
# categories star, circle; colours red, blue: columns 0, 1 | 2, 3
CONFIG = GroundingConfig(categories=["star", "circle"], attributes={"color": ["red", "blue"]},
                         words=[[ID["star"], 0], [ID["stars"], 0], [ID["circle"], 1],
                                [ID["circles"], 1], [ID["red"], 2], [ID["blue"], 3]],
                         cells=True)
GRID = (4, 5)


def flood_fill_count(grid):
    """8-connected components of a 2-D 0/1 array, by a plain flood fill."""
    seen, count = np.zeros_like(grid, bool), 0
    for start in zip(*np.nonzero(grid)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        while stack:
            r, c = stack.pop()
            if seen[r, c] or not grid[r, c]:
                continue
            seen[r, c] = True
            stack += [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                      if 0 <= r + dr < grid.shape[0] and 0 <= c + dc < grid.shape[1]]
    return count


def test_components_count_as_a_flood_fill_does():
    rng = np.random.default_rng(0)
    maps = (rng.random((6, 4 * 5, 3)) < 0.35).astype("float32")
    found = ops.convert_to_numpy(components(maps, GRID))
    for n in range(6):
        for m in range(3):
            assert found[n, m] == flood_fill_count(maps[n, :, m].reshape(GRID))


def readings(objects):
    """Cell logits (1, L, 1 + 2 + 2) of a head sure of ``objects`` {(row, col): (category,
    colour)}, nothing elsewhere."""
    logits = np.full((1, GRID[0] * GRID[1], 5), -10.0, np.float32)
    for (row, col), (category, colour) in objects.items():
        cell = row * GRID[1] + col
        logits[0, cell, 0] = 10.0
        logits[0, cell, 1 + category] = 10.0
        logits[0, cell, 3 + colour] = 10.0
    return logits


# two red stars (one of two cells), a blue star, a blue circle
SCENE = {(0, 0): (0, 0), (0, 1): (0, 0), (3, 4): (0, 0), (2, 0): (0, 1), (0, 3): (1, 1)}


def test_counts_are_the_components_of_each_kind_read_in_the_cells():
    words = NumberWords(VOCABULARY, CONFIG, GRID)
    counts = {k: ops.convert_to_numpy(v) for k, v in words.counts(readings(SCENE)).items()}
    np.testing.assert_array_equal(counts["count_category"], [[3, 1]])
    np.testing.assert_array_equal(counts["count_attribute"], [[[2, 1], [0, 1]]])
    np.testing.assert_array_equal(counts["count_total"], [4])


def scores_along(caption):
    """The count scores (V,) at each step of ``caption`` after <start>."""
    words = NumberWords(VOCABULARY, CONFIG, GRID)
    memory = words.counts(readings(SCENE))
    state = words.initial_state(1)
    found = []
    for token in [VOCABULARY.start_id] + [ID[w] for w in caption.split()]:
        state = words.follow(state, ops.convert_to_tensor([token], "int32"))
        scores, state = words.scores(state, None, memory)
        found.append(dict(zip(VOCABULARY.words, ops.convert_to_numpy(scores)[0])))
    return found


def test_number_words_and_the_nouns_after_them_score_by_the_counts():
    steps = scores_along("two red stars and a blue circle and two other shapes")
    first = steps[0]  # some kind has two (red stars), three (stars), one (...)
    assert first["two"] == 0 and first["three"] == 0 and first["single"] == 0
    after_two = steps[1]
    assert after_two["red"] == 0 and after_two["blue"] == -PENALTY * 1  # blue: 1 star, 1 circle
    assert after_two["star"] == -PENALTY and after_two["circle"] == -PENALTY  # 3 and 1 of them
    after_red = steps[2]
    assert after_red["stars"] == 0 and after_red["circles"] == -PENALTY * 2  # no red circle
    # step k scores word k + 1: after "two red stars and a blue circle and" (three named)
    assert steps[8]["two"] == 0  # the red stars are two
    assert steps[8]["three"] == 0  # the stars are three
    after_other = steps[10]  # "... and two other": 4 - 3 named = 1 left, not two
    assert after_other["shapes"] == -PENALTY * 1
    assert steps[3]["red"] == -PENALTY  # both red objects are named
    assert all(value == 0 for word, value in steps[3].items()
               if word not in ("star", "stars", "circle", "circles", "two", "three", "single",
                               "red"))


def test_a_category_named_more_often_than_the_head_reads_it_loses():
    steps = scores_along("a blue circle and a blue")
    assert steps[2]["circle"] == 0  # the first: one circle is there
    assert steps[5]["circle"] == -PENALTY  # a second circle: none left
    assert steps[5]["star"] == 0  # three stars, none named yet


def test_other_and_going_on_score_by_the_objects_not_named_yet():
    steps = scores_along("two red stars and a blue circle and two other")
    assert steps[9]["other"] == -PENALTY  # four read, three named: one other, not two
    steps = scores_along("a blue circle and a")
    assert steps[5]["star"] == 0  # a kind named for the first time: not judged here


def test_a_description_named_more_often_than_the_head_reads_it_loses():
    steps = scores_along("a blue star and a blue")
    assert steps[6]["star"] == -PENALTY  # one blue star, though three stars
    assert steps[6]["circle"] == 0  # the blue circle is not named yet
    steps = scores_along("a red star and a red")
    assert steps[6]["star"] == 0  # two red stars
    steps = scores_along("a blue star and a blue circle and a")
    assert steps[9]["blue"] == -PENALTY  # two blue objects, both named
    assert steps[9]["red"] == 0


def test_with_centres_overlapping_objects_count_apart():
    config = GroundingConfig(**{**CONFIG.to_dict(), "centres": True})
    words = NumberWords(VOCABULARY, config, GRID)
    # one blob of ten cells: two red stars (centres at (1, 1) and (1, 3), labels
    # read in every cell) and a blue circle at (3, 0), diagonal to (2, 1); a weaker centre
    # reading beside the first star's peak counts once
    logits = readings({(r, c): (0, 0) for r in (0, 1, 2) for c in (1, 2, 3)} |
                      {(3, 0): (1, 1)})
    centre = np.full((1, GRID[0] * GRID[1], 1), -10.0, np.float32)
    for (row, col), value in {(1, 1): 8.0, (1, 3): 8.0, (3, 0): 8.0, (2, 1): 2.0}.items():
        centre[0, row * GRID[1] + col] = value
    counts = {k: ops.convert_to_numpy(v) for k, v in
              words.counts(np.concatenate([logits, centre], axis=-1)).items()}
    np.testing.assert_array_equal(counts["count_category"], [[2, 1]])
    np.testing.assert_array_equal(counts["count_attribute"], [[[2, 0], [0, 1]]])
    np.testing.assert_array_equal(counts["count_total"], [3])
    blobs = {k: ops.convert_to_numpy(v) for k, v in
             NumberWords(VOCABULARY, CONFIG, GRID).counts(logits).items()}
    np.testing.assert_array_equal(blobs["count_total"], [1])  # by components: one blob


def test_going_on_to_another_object_when_all_are_named_loses():
    steps = scores_along("a blue circle and two red stars and a blue star")
    assert steps[3]["and"] == 0  # after "a blue circle": three more objects are read
    assert steps[7]["and"] == 0  # after "... two red stars": the blue star is left
    assert steps[11]["and"] == -PENALTY and steps[11]["a"] == -PENALTY  # all four named
    assert steps[10]["a"] == 0  # an article inside a mention is not judged
