import numpy as np

from captioner.search import greedy_search, log_softmax

END = 2


def table_step(table):
    """A step function whose next-word distribution depends only on the last token."""
    def step(tokens, state):
        tokens = np.asarray(tokens)
        logits = np.log(np.array([table[int(t)] for t in tokens]))
        alpha = np.tile(np.eye(3)[state["t"] % 3], (len(tokens), 1))
        return logits, {"t": state["t"] + 1}, alpha
    return step


def test_greedy_follows_the_most_likely_word_and_stops_at_end():
    #            pad  start end  w3   w4
    table = {1: [1e-9, 1e-9, 0.1, 0.6, 0.3],
             3: [1e-9, 1e-9, 0.2, 0.1, 0.7],
             4: [1e-9, 1e-9, 0.9, 0.05, 0.05]}
    results = greedy_search(table_step(table), {"t": 0}, 2, start_id=1, end_id=END, max_length=5)
    best = results[0][0]
    assert best["tokens"] == [3, 4]
    np.testing.assert_allclose(best["log_probs"], np.log([0.6, 0.7]))
    np.testing.assert_allclose(best["score"], np.log(0.6 * 0.7 * 0.9))
    assert best["alphas"].shape == (2, 3) and best["alphas"][1].tolist() == [0, 1, 0]
    assert results[1][0]["tokens"] == [3, 4]


def test_greedy_stops_at_max_length_without_end():
    table = {1: [1e-9, 1e-9, 0.1, 0.9, 1e-9], 3: [1e-9, 1e-9, 0.1, 0.9, 1e-9]}
    best = greedy_search(table_step(table), {"t": 0}, 1, 1, END, max_length=4)[0][0]
    assert best["tokens"] == [3, 3, 3, 3]
    np.testing.assert_allclose(best["score"], 4 * np.log(0.9))


def test_log_softmax_is_normalised():
    values = log_softmax(np.array([[1000.0, 1001.0, 999.0]]))
    np.testing.assert_allclose(np.exp(values).sum(), 1.0)
