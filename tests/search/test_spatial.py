"""Grounded decoding of position and relation words (``captioner.search.spatial``): its
scores along a caption against a NumPy reference of the module's formulas, and that the
word it prefers is the one the statement checks find true of boxes at those places."""

import numpy as np
import pytest
from keras import ops

from captioner.data.vocab import SPECIAL_TOKENS, Vocabulary
from captioner.metrics.lexicon import ObjectLexicon
from captioner.metrics.statements import check_caption
from captioner.search.spatial import APART, SHARPNESS, TOGETHER, SpatialWords

pytestmark = pytest.mark.backend

WORDS = ["a", "star", "circle", "on", "at", "in", "the", "to", "of", "left", "right", "top",
         "bottom", "middle", "above", "below", "and"]
VOCABULARY = Vocabulary(list(SPECIAL_TOKENS) + WORDS)
ID = VOCABULARY.index
GRID = (3, 3)


def cell(row, col):
    alpha = np.zeros(GRID[0] * GRID[1], np.float32)
    alpha[row * GRID[1] + col] = 1.0
    return alpha


def place(alpha):
    rows, cols = np.divmod(np.arange(alpha.size), GRID[1])
    return np.array([alpha @ ((cols + 0.5) / GRID[1]), alpha @ ((rows + 0.5) / GRID[0])])


def reference(anchor, here, mode):
    """{word: score} of the module docstring's formulas; mode: "position", "relation",
    "after" (just after an object word) or None."""
    def thirds(value):
        margins = np.array([1 / 3 - value, value - 2 / 3, min(value - 1 / 3, 2 / 3 - value)])
        return margins - margins.max()
    across, down = thirds(anchor[0]), thirds(anchor[1])
    dx, dy = here - anchor
    rel = np.array([dx, -dx, dy, -dy])
    rel = rel - rel.max()
    opening = rel + TOGETHER * min(max(abs(dx), abs(dy)) - APART, 0.0)  # not "left" of "to the"
    scores = dict.fromkeys(WORDS, 0.0)
    if mode == "position":
        scores.update(left=across[0], right=across[1], top=down[0], bottom=down[1],
                      middle=across[2] + down[2])
    if mode == "relation":
        scores.update(left=rel[0], right=rel[1])
    if mode != "position":
        scores.update(above=opening[2], below=opening[3])
    if mode == "after":
        scores["to"] = max(opening[0], opening[1])
    return {word: SHARPNESS * value for word, value in scores.items()}


def run(caption, alphas):
    """Each step's scores (V,) of ``caption`` (words fed one by one after <start>), the
    step reading ``alphas[t]``."""
    spatial = SpatialWords(VOCABULARY, [ID["star"], ID["circle"]], GRID)
    state = spatial.initial_state(1)
    tokens = [VOCABULARY.start_id] + [ID[w] for w in caption.split()]
    found = []
    for token, alpha in zip(tokens, alphas):
        state = spatial.follow(state, ops.convert_to_tensor([token], "int32"))
        scores, state = spatial.scores(state, ops.convert_to_tensor(alpha[None]))
        found.append(ops.convert_to_numpy(scores)[0])
    return found


def test_position_and_relation_words_score_as_the_reference_along_a_caption():
    star, other, nearby = cell(0, 0), cell(2, 2), cell(1, 2)
    caption = "a star to the left of a circle on the"
    alphas = [star, star, other, nearby, nearby, nearby, other, other, other, star, star]
    scores = run(caption, alphas + [star])
    # step t reads the word t of "<start> a star ...": the star is named at step 2 (its
    # place: what step 1 attended), the circle at step 8
    modes = {2: ("after", star), 3: ("relation", star), 4: ("relation", star),
             5: ("relation", star), 6: (None, star), 10: ("position", other)}
    for step, (mode, anchor) in modes.items():
        expected = reference(place(anchor), place(alphas[step]), mode)
        np.testing.assert_allclose(scores[step], [expected.get(w, 0.0) for w in
                                                  SPECIAL_TOKENS + tuple(WORDS)], atol=1e-5)
    for step in (0, 1):  # nothing named yet: nothing to judge
        assert not scores[step].any()


@pytest.mark.parametrize("seed", range(3))
def test_the_words_preferred_are_the_ones_the_statement_checks_find_true(seed):
    """Places drawn at random: among left/right/above/below after "to the" or an object
    word, and among the thirds after "on the", the best-scored word states what the
    checks (dominant rule, image thirds) find true of small boxes at those places."""
    rng = np.random.default_rng(seed)
    lexicon = ObjectLexicon(["star", "circle"])
    spatial = SpatialWords(VOCABULARY, [ID["star"], ID["circle"]], (12, 12))
    for _ in range(20):
        first, second = rng.choice(144, 2, replace=False)
        alphas = np.eye(144, dtype=np.float32)[[first, second]]
        state = spatial.follow(spatial.initial_state(1), ops.convert_to_tensor([ID["a"]]))
        _, state = spatial.scores(state, ops.convert_to_tensor(alphas[:1]))
        state = spatial.follow(state, ops.convert_to_tensor([ID["star"]]))  # anchored
        after, _ = spatial.scores(state, ops.convert_to_tensor(alphas[1:]))
        after = ops.convert_to_numpy(after)[0]
        (ax, ay), (bx, by) = (np.array(divmod(i, 12))[::-1] * 10 + 5 for i in (first, second))
        objects = [{"category": "star", "bbox": [ax - 1, ay - 1, 2, 2]},
                   {"category": "circle", "bbox": [bx - 1, by - 1, 2, 2]}]
        if ax != bx and ay != by and abs(ax - bx) != abs(ay - by):
            across = "left" if after[ID["to"]] == 0 and bx > ax else \
                "right" if after[ID["to"]] == 0 else None
            best = across or ("above" if after[ID["above"]] == 0 else "below")
            phrase = {"left": "to the left of", "right": "to the right of"}.get(best, best)
            [(statement, true)] = [c for c in check_caption(
                f"a star {phrase} a circle", objects, (120, 120), lexicon)
                if c[0].kind == "relation"]
            assert true, (best, objects)
        for opener in ("on", "the"):
            state = spatial.follow(state, ops.convert_to_tensor([ID[opener]]))
        position, _ = spatial.scores(state, ops.convert_to_tensor(alphas[1:]))
        position = ops.convert_to_numpy(position)[0]
        across = max(("left", "right"), key=lambda w: position[ID[w]])
        down = max(("top", "bottom"), key=lambda w: position[ID[w]])
        for word in (across, down):
            if position[ID[word]] == 0:  # in that third (not in the middle one)
                [(_, true)] = [c for c in check_caption(
                    f"a star on the {word}", objects, (120, 120), lexicon)
                    if c[0].kind == "position"]
                assert true, (word, objects)


def test_an_opener_right_after_an_object_word_scores_by_the_best_third_it_opened():
    # "at" opened the top and bottom rows, "in" the middle: flags across x down
    at, inside = [1, 1, 0, 1, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0, 0, 1]
    spatial = SpatialWords(VOCABULARY, [ID["star"], ID["circle"]], GRID,
                           openers=[[ID["at"], 1.0, at], [ID["in"], 0.9, inside],
                                    [ID["on"], 0.4, inside]])  # "on": mostly not a place
    # at the centre, "at the top/bottom" is a third off; at the top middle, "in the
    # middle" is (the row's margins: 1/3 - y, y - 2/3, min(y - 1/3, 2/3 - y), less the best)
    for star, expected_at, expected_in in ((cell(1, 1), -1 / 3, 0.0),
                                           (cell(0, 1), 0.0, -1 / 3)):
        state = spatial.initial_state(1)
        for token, alpha in ((VOCABULARY.start_id, star), (ID["a"], star), (ID["star"], star)):
            state = spatial.follow(state, ops.convert_to_tensor([token], "int32"))
            scores, state = spatial.scores(state, ops.convert_to_tensor(alpha[None]))
        scores = ops.convert_to_numpy(scores)[0]
        np.testing.assert_allclose(scores[[ID["at"], ID["in"], ID["on"]]],
                                   [SHARPNESS * expected_at, SHARPNESS * expected_in, 0.0],
                                   atol=1e-5)
