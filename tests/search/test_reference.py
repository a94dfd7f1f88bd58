"""The reference searches (tests/reference_search.py) on hand-built step functions with
known probabilities: the rules the graph searches of ``captioner.search`` are held to
(tests/search/test_compiled.py compares the two on real models)."""

import numpy as np
import pytest

from captioner.search import normalised_score
from tests.reference_search import beam_search, greedy_search, log_softmax

pytestmark = pytest.mark.backend  # the search tiles and reorders with keras.tree and ops

START, END, W3, W4 = 1, 2, 3, 4
TINY = 1e-12  # <pad> and <start> are never predicted


def distribution(end=0.0, w3=0.0, w4=0.0):
    return [TINY, TINY, end, w3, w4]


def table_step(tables):
    """A step whose next-word distribution depends on the image's table (in memory),
    the step count and the last token: tables[image][(t, last)] or tables[image][last].

    Alpha at step t is one-hot on cell t % 3, so reordered beams can be checked.
    """
    def step(tokens, state, memory):
        tokens, counts = np.asarray(tokens), np.asarray(state["t"])
        rows = []
        for token, count, image in zip(tokens, counts, np.asarray(memory["image"])):
            table = tables[int(image)]
            rows.append(table.get((int(count), int(token)),
                                  table.get(int(token), distribution(end=1.0))))
        alpha = np.eye(3)[counts % 3]
        with np.errstate(divide="ignore"):  # probability 0: that word can never be chosen
            return np.log(np.array(rows)), {"t": counts + 1}, alpha
    return step


def run(search, tables, **options):
    images = len(tables)
    return search(table_step(tables), {"t": np.zeros(images, np.int64)},
                  {"image": np.arange(images)}, images, START, END, **options)


# Greedy takes w3 (0.55) and then must end at 0.4: 0.22 in all. w4 first (0.45) ends at
# 0.95: 0.4275. Only a search that keeps two hypotheses finds it.
GREEDY_TRAP = {START: distribution(w3=0.55, w4=0.45), W3: distribution(end=0.4, w3=0.3, w4=0.3),
               W4: distribution(end=0.95, w3=0.025, w4=0.025)}
# A = [w3] scores 0.3 * 0.9 = 0.27 over 2 tokens; B = [w4, w4] scores 0.7 * 0.9 * 0.4 =
# 0.252 over 3 tokens; C = [w4, w4, w3] scores 0.7 * 0.9 * 0.3 * 0.9 = 0.1701 over 4.
# By total log-probability A > B > C; by the mean per token C > B > A.
SHORT_OR_LONG = {START: distribution(w3=0.3, w4=0.7), W3: distribution(end=0.9, w3=0.05, w4=0.05),
                 (1, W4): distribution(end=0.05, w3=0.05, w4=0.9),
                 W4: distribution(end=0.4, w3=0.3, w4=0.3)}


def test_greedy_follows_the_most_likely_word_and_stops_at_end():
    best = run(greedy_search, [GREEDY_TRAP], max_length=5)[0][0]
    assert best["tokens"] == [W3] and best["finished"]
    np.testing.assert_allclose(best["log_probs"], np.log([0.55]))
    np.testing.assert_allclose(best["log_prob"], np.log(0.55 * 0.4))
    assert best["alphas"].shape == (1, 3)


def test_beam_search_finds_the_sequence_greedy_misses():
    greedy = run(greedy_search, [GREEDY_TRAP], max_length=5)[0][0]
    beam = run(beam_search, [GREEDY_TRAP], max_length=5, beam_size=2)[0][0]
    assert greedy["tokens"] == [W3]
    assert beam["tokens"] == [W4] and beam["finished"]
    np.testing.assert_allclose(beam["log_prob"], np.log(0.45 * 0.95))
    assert beam["log_prob"] > greedy["log_prob"]


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_an_empty_caption_when_end_comes_first(search):
    best = run(search, [{START: distribution(end=0.9, w3=0.1)}], max_length=5)[0][0]
    assert best["tokens"] == [] and best["finished"] and best["alphas"].shape == (0, 3)
    np.testing.assert_allclose(best["log_prob"], np.log(0.9))


def test_beam_of_one_is_greedy_exactly():
    for tables in ([GREEDY_TRAP], [SHORT_OR_LONG], [GREEDY_TRAP, SHORT_OR_LONG]):
        greedy = run(greedy_search, tables, max_length=4)
        beam = run(beam_search, tables, max_length=4, beam_size=1)
        for g, b in zip(greedy, beam):
            assert g[0]["tokens"] == b[0]["tokens"]
            assert g[0]["log_prob"] == b[0]["log_prob"]
            np.testing.assert_array_equal(g[0]["alphas"], b[0]["alphas"])


def test_n_best_is_sorted_and_images_are_searched_independently():
    results = run(beam_search, [GREEDY_TRAP, SHORT_OR_LONG], max_length=5, beam_size=3, n_best=3)
    for hypotheses in results:
        assert len(hypotheses) == 3
        scores = [h["score"] for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
    assert results[0][0]["tokens"] == [W4]   # each image got its own table
    assert results[1][0]["tokens"] == [W3]


def test_length_penalty_changes_the_ranking_as_computed_by_hand():
    a, b, c = np.log(0.3 * 0.9), np.log(0.7 * 0.9 * 0.4), np.log(0.7 * 0.9 * 0.3 * 0.9)
    by_total = run(beam_search, [SHORT_OR_LONG], max_length=5, beam_size=2, n_best=2)[0]
    assert [h["tokens"] for h in by_total] == [[W3], [W4, W4]]
    np.testing.assert_allclose([h["score"] for h in by_total], [a, b])
    by_mean = run(beam_search, [SHORT_OR_LONG], max_length=5, beam_size=2, n_best=2,
                  length_penalty=1.0)[0]
    assert [h["tokens"] for h in by_mean] == [[W4, W4, W3], [W4, W4]]
    np.testing.assert_allclose([h["score"] for h in by_mean], [c / 4, b / 3])
    np.testing.assert_allclose([h["log_prob"] for h in by_mean], [c, b])
    np.testing.assert_allclose(normalised_score(b, 3, 0.5), b / np.sqrt(3))


def test_attention_maps_follow_their_hypothesis():
    best = run(beam_search, [SHORT_OR_LONG], max_length=5, beam_size=2, length_penalty=1.0)[0][0]
    assert best["tokens"] == [W4, W4, W3]
    np.testing.assert_array_equal(best["alphas"], np.eye(3)[[0, 1, 2]])


def test_min_length_forbids_an_early_end():
    best = run(beam_search, [GREEDY_TRAP], max_length=5, beam_size=2, min_length=2)[0][0]
    assert len(best["tokens"]) >= 2 and best["finished"]


def test_when_nothing_ends_the_best_unfinished_hypothesis_is_returned():
    never_ends = {START: distribution(w3=0.6, w4=0.4), W3: distribution(w3=0.5, w4=0.5),
                  W4: distribution(w3=0.1, w4=0.9)}
    for search, options in ((greedy_search, {}), (beam_search, {"beam_size": 3, "n_best": 2})):
        hypotheses = run(search, [never_ends], max_length=3, **options)[0]
        assert all(not h["finished"] and len(h["tokens"]) == 3 for h in hypotheses)
        assert len(hypotheses) == options.get("n_best", 1)
    best = run(beam_search, [never_ends], max_length=3, beam_size=3)[0][0]
    assert best["tokens"] == [W4, W4, W4]          # 0.4 * 0.81 beats 0.6 * 0.5 * 0.5
    np.testing.assert_allclose(best["log_prob"], np.log(0.4 * 0.9 * 0.9))


def test_beam_search_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_best"):
        run(beam_search, [GREEDY_TRAP], max_length=3, beam_size=2, n_best=3)


def test_log_softmax_is_normalised():
    values = log_softmax(np.array([[1000.0, 1001.0, 999.0]]))
    np.testing.assert_allclose(np.exp(values).sum(), 1.0)
