"""The controls every search applies (``captioner.search.Controls``) on step functions
whose preferences are known: a caption that loves repeating itself, a word that must never
be written, the unknown word."""

import keras
import numpy as np
import pytest
from keras import ops

from captioner.config import SearchConfig
from captioner.errors import ConfigError
from captioner.search import BeamSampler, Controls, GreedySampler, SamplingSampler, banned_ids
from tests.reference_search import controlled, log_softmax

pytestmark = pytest.mark.backend

VOCAB, START, END, UNK = 9, 1, 2, 3


def cycle_step(tokens, state, memory):
    """Prefers the word after the last one in the cycle 4 5 6 4 5 6 ... (and <unk> as
    much as that word), never <end> before 12 words."""
    rows = ops.shape(tokens)[0]
    following = ops.where(tokens >= 6, 4, ops.maximum(tokens + 1, 4))
    logits = ops.one_hot(following, VOCAB) * 6.0 + ops.one_hot(ops.full((rows,), UNK), VOCAB) * 6.0
    count = state[0] + 1
    logits = ops.where((count > 12)[:, None], ops.one_hot(ops.full((rows,), END), VOCAB) * 20.0,
                       logits)
    return logits, [count], ops.ones((rows, 4)) / 4.0


def run(sampler, max_length=14, rows=2):
    memory = {"annotations": ops.zeros((rows, 4, 1))}
    if isinstance(sampler, SamplingSampler):
        sampler = sampler.seeded(ops.arange(rows))
    outputs = sampler(cycle_step, [ops.zeros((rows,), "int32")], memory, rows, START, END,
                      max_length)
    return sampler.hypotheses(keras.tree.map_structure(ops.convert_to_numpy, outputs))


def trigrams(words):
    return [tuple(words[i:i + 3]) for i in range(len(words) - 2)]


SAMPLERS = {"greedy": lambda c: GreedySampler(c), "beam3": lambda c: BeamSampler(3, 3, controls=c),
            "diverse4x2": lambda c: BeamSampler(4, 2, groups=2, diversity=1.0, controls=c),
            "sample3": lambda c: SamplingSampler(3, temperature=0.7, controls=c)}


@pytest.mark.parametrize("kind", SAMPLERS)
def test_no_caption_repeats_a_trigram_and_banned_words_never_appear(kind):
    free = run(SAMPLERS[kind](Controls(banned=(0, 1))))
    assert any(len(set(trigrams(h["tokens"]))) < len(trigrams(h["tokens"]))
               for found in free for h in found)  # without the controls it repeats
    assert any(UNK in h["tokens"] for found in free for h in found)
    blocked = run(SAMPLERS[kind](Controls(banned=(0, 1, UNK, 5), no_repeat_ngram=3)))
    for found in blocked:
        for h in found:
            assert len(set(trigrams(h["tokens"]))) == len(trigrams(h["tokens"]))
            assert not {0, 1, UNK, 5} & set(h["tokens"]) and h["tokens"]


def test_the_controls_equal_the_reference_rules(rng):
    written = rng.integers(4, 9, (6, 7)).astype("int32")
    written[0, :6] = [4, 5, 6, 4, 5, 6]  # a caption whose next word would repeat "5 6 4"
    scores = log_softmax(rng.normal(size=(6, VOCAB)))
    for t in (0, 2, 6):
        for options in (dict(no_repeat_ngram=3), dict(no_repeat_ngram=1, min_length=4),
                        dict(repetition_penalty=1.7, banned=(UNK,)), dict(no_repeat_ngram=2)):
            controls = Controls(**options)
            slots = np.zeros((6, 8), "int32")
            slots[:, :t] = written[:, :t]
            got = ops.convert_to_numpy(controls(ops.convert_to_tensor(scores, "float32"), t,
                                                ops.convert_to_tensor(slots), END))
            expected = controlled(scores, [list(row[:t]) for row in written], END, **options)
            np.testing.assert_allclose(got, expected, atol=1e-5)
    blocked = ops.convert_to_numpy(Controls(no_repeat_ngram=3)(
        ops.convert_to_tensor(scores, "float32"), 6, ops.convert_to_tensor(
            np.pad(written, ((0, 0), (0, 1)))), END))
    assert blocked[0, 4] == -np.inf and np.isfinite(blocked[0, 5])


def test_written_words_follow_each_beam_through_reordering():
    # beam search with a repetition penalty equals its reference on the cycle step
    from tests.reference_search import beam_search

    def numpy_step(tokens, state, memory):
        logits, state, alpha = cycle_step(tokens, state, memory)
        return logits, state, alpha
    for controls in (dict(repetition_penalty=3.0), dict(no_repeat_ngram=2)):
        expected = beam_search(numpy_step, [ops.zeros((2,), "int32")],
                               {"annotations": ops.zeros((2, 4, 1))}, 2, START, END, 14, 3, 3,
                               controls=controls)
        got = run(BeamSampler(3, 3, controls=Controls(**controls)))
        assert [[h["tokens"] for h in found] for found in got] == \
            [[h["tokens"] for h in found] for found in expected]


def test_the_unknown_word_is_banned_unless_allowed_and_a_word_not_in_the_vocabulary_is_one_line(
        vocabulary):
    assert vocabulary.unk_id in banned_ids(SearchConfig(), vocabulary)
    assert vocabulary.unk_id not in banned_ids(SearchConfig(allow_unknown=True), vocabulary)
    word = vocabulary.words[7]
    assert vocabulary.index[word] in banned_ids(SearchConfig(ban=(word,)), vocabulary)
    with pytest.raises(ConfigError, match="'zebrra' not in the model's vocabulary"):
        banned_ids(SearchConfig(ban=("zebrra",)), vocabulary)


@pytest.mark.parametrize("settings, message", [
    (dict(samples=3, beam=3), "do not mix"), (dict(top_p=0.9, n_best=1, beam=2), "do not mix"),
    (dict(beam=4, beam_groups=3), "must divide"), (dict(top_p=0.0), "top_p"),
    (dict(temperature=0.0), "temperature"), (dict(ban=("two words",)), "takes words"),
    (dict(no_repeat_ngram=-1), "no_repeat_ngram"), (dict(seed=-1), "seed")])
def test_settings_that_do_not_go_together_are_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**settings)
