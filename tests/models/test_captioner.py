import keras
import numpy as np
import pytest
from keras import ops

from captioner.config import attention_scores
from captioner.data.coco import load_coco_split
from captioner.data.dataset import CaptionBatches
from captioner.data.vocab import Vocabulary
from captioner.errors import ModelError
from captioner.models.captioner import create_captioner
from captioner.models.losses import doubly_stochastic_penalty
from tests.conftest import tiny_config
from tests.helpers import assert_round_trip, decode_batch, load_model, save_model

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def batch(synthetic_coco, vocabulary):
    records, _ = load_coco_split(synthetic_coco, "train")
    batches = CaptionBatches(records[:4], vocabulary, 32, batch_size=4, max_length=12,
                             shuffle=False, length_bucket=0)
    return batches[0]


def test_outputs_have_documented_shapes_and_attention_sums_to_one(tiny_model, batch):
    x, _, _ = batch
    outputs = tiny_model(x)
    assert tuple(outputs["logits"].shape) == (4, 13, tiny_model.model_config.vocab_size)
    assert tuple(outputs["alphas"].shape) == (4, 13, 16)  # 32 px -> 4x4 grid
    np.testing.assert_allclose(ops.convert_to_numpy(ops.sum(outputs["alphas"], -1)), 1.0,
                               atol=1e-5)


def test_teacher_forcing_runs_the_same_step_as_decoding(tiny_model, batch):
    x, _, _ = batch
    logits = ops.convert_to_numpy(tiny_model(x)["logits"])
    decoder = tiny_model.decoder
    memory = decoder.prepare(tiny_model.encode(x["images"]))
    state = decoder.initial_state(memory)
    for t in range(3):
        step_logits, state, _ = decoder.step(x["tokens"][:, t], state, memory)
        np.testing.assert_allclose(ops.convert_to_numpy(step_logits), logits[:, t], atol=1e-5)


def test_a_batch_of_unknown_length_runs_the_same_steps(tiny_model, batch):
    """TensorFlow traces tf.data batches of any caption length once, with the time axis
    unknown: the decoder then scans over it, and must compute what the unrolled loop does."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("JAX always knows the length (it compiles once per length)")
    import tensorflow as tf
    x, _, _ = batch
    traced = tf.function(lambda images, tokens: tiny_model({"images": images, "tokens": tokens}),
                         input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.uint8),
                                          tf.TensorSpec((None, None), tf.int32)])
    for steps in (2, 13):
        expected = tiny_model({"images": x["images"], "tokens": x["tokens"][:, :steps]})
        scanned = traced(x["images"], x["tokens"][:, :steps])
        for key in ("logits", "alphas"):
            assert scanned[key].shape[1] == steps
            np.testing.assert_allclose(np.asarray(scanned[key]),
                                       ops.convert_to_numpy(expected[key]), atol=1e-5)


def test_doubly_stochastic_penalty_matches_numpy(rng):
    """Rows without a word (the filler of a last batch) do not count."""
    alphas = rng.dirichlet(np.ones(5), size=(3, 3)).astype("float32")  # (batch, T, L)
    mask = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], "float32")
    expected = np.mean((1 - (alphas[:2] * mask[:2, :, None]).sum(1)) ** 2)
    np.testing.assert_allclose(ops.convert_to_numpy(doubly_stochastic_penalty(alphas, mask)),
                               expected, rtol=1e-6)


def test_tiny_model_overfits_a_tiny_batch(vocabulary, batch):
    x, y, w = batch
    model = create_captioner(tiny_config(vocabulary, doubly_stochastic=0.0), seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    untrained = float(model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)["nll"])
    history = model.fit(x, y, sample_weight=w, epochs=150, batch_size=4, verbose=0).history["nll"]
    assert history[-1] < history[0]
    assert untrained > 2.0 and history[-1] < 0.05
    predicted = ops.convert_to_numpy(model(x)["logits"]).argmax(-1)
    assert ((predicted == y) * w).sum() / w.sum() > 0.98  # teacher-forced words all right
    captions = decode_batch(model, vocabulary, x["images"])  # free-running decoding recites
    recited = [vocabulary.decode(h[0]["tokens"]) == vocabulary.decode(y[row])
               for row, h in enumerate(captions)]
    assert sum(recited) >= 3, recited


def test_save_load_gives_identical_logits_and_captions(tiny_model, batch, tmp_path, vocabulary):
    x, _, _ = batch
    loaded = assert_round_trip(tiny_model, x, tmp_path)
    assert loaded.grid_shape == tiny_model.grid_shape
    before = decode_batch(tiny_model, vocabulary, x["images"])
    after = decode_batch(loaded, vocabulary, x["images"])
    assert [h[0]["tokens"] for h in before] == [h[0]["tokens"] for h in after]
    save_model(str(tmp_path / "dir"), tiny_model, vocabulary)
    saved = load_model(str(tmp_path / "dir"))
    model, loaded_vocabulary, config = saved.model, saved.vocabulary, saved.config
    assert loaded_vocabulary.words == vocabulary.words and config["kind"] == "captioner"
    np.testing.assert_allclose(ops.convert_to_numpy(model(x)["logits"]),
                               ops.convert_to_numpy(tiny_model(x)["logits"]), atol=1e-6)


@pytest.mark.parametrize("score", attention_scores())
@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_every_score_saves_loads_and_decodes(vocabulary, batch, tmp_path, score, attention):
    x, _, _ = batch
    # 24 LSTM units against 32 feature channels: dot scores then compare a projected state
    model = create_captioner(tiny_config(vocabulary, score=score, attention=attention,
                                         lstm_units=24), seed=2)
    assert hasattr(model.decoder, "query_to_keys") == (score in ("dot", "scaled_dot"))
    outputs = model(x, training=attention == "hard")
    np.testing.assert_allclose(ops.convert_to_numpy(ops.sum(outputs["alphas"], -1)), 1.0,
                               atol=1e-5)
    if attention == "hard":  # every member gives alpha, so hard attention can sample from it
        assert (ops.convert_to_numpy(outputs["log_policy"]) <= 0).all()
    save_model(str(tmp_path / score), model, vocabulary)
    loaded = load_model(str(tmp_path / score)).model
    assert loaded.model_config.decoder.score == score
    for key in ("logits", "alphas"):
        np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)[key]),
                                   ops.convert_to_numpy(model(x)[key]), rtol=0, atol=1e-6)
    before = decode_batch(model, vocabulary, x["images"])
    after = decode_batch(loaded, vocabulary, x["images"])
    assert [h[0]["tokens"] for h in before] == [h[0]["tokens"] for h in after]


def test_beam_search_on_the_model(tiny_model, batch, vocabulary):
    """Beam 1 without length penalty is greedy, word for word; wider beams return sorted
    n-best lists whose log-probabilities are those the model gives their words."""
    from captioner.config import SearchConfig
    from captioner.search import banned_ids
    from tests.reference_search import beam_search, greedy_search
    x, _, _ = batch
    decoder = tiny_model.decoder
    memory = decoder.prepare(tiny_model.encode(x["images"]))
    options = dict(batch_size=len(x["images"]), start_id=1, end_id=2, max_length=6)
    greedy = greedy_search(decoder.step, decoder.initial_state(memory), memory, **options)
    beam = beam_search(decoder.step, decoder.initial_state(memory), memory, beam_size=1,
                       **options)
    for g, b in zip(greedy, beam):
        assert g[0]["tokens"] == b[0]["tokens"] and g[0]["finished"] == b[0]["finished"]
        np.testing.assert_allclose(g[0]["log_probs"], b[0]["log_probs"], atol=1e-6)
        np.testing.assert_allclose(g[0]["alphas"], b[0]["alphas"], atol=1e-6)
    wide = decode_batch(tiny_model, vocabulary, x["images"], max_length=6, beam_size=3,
                        n_best=3)
    for row, hypotheses in enumerate(wide):
        assert len(hypotheses) == 3
        scores = [h["score"] for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        best = hypotheses[0]
        assert best["alphas"].shape == (len(best["tokens"]), 16)
        np.testing.assert_allclose(best["alphas"].sum(-1), 1.0, atol=1e-5)
        # re-score the best hypothesis by teacher forcing: the same log-probabilities, of
        # the words a caption may have (<pad>, <start> and <unk> are banned by default)
        tokens = np.array([[1] + best["tokens"]], np.int32)
        images = x["images"][row:row + 1]
        logits = ops.convert_to_numpy(tiny_model({"images": images, "tokens": tokens})["logits"])
        logits[0][:, banned_ids(SearchConfig(), vocabulary)] = -np.inf
        log_probs = logits[0] - np.log(np.exp(logits[0]).sum(-1, keepdims=True))
        expected = log_probs[np.arange(len(best["tokens"])), best["tokens"]]
        np.testing.assert_allclose(best["log_probs"], expected, atol=1e-4)


def test_a_vocabulary_of_the_wrong_size_is_refused(tiny_model, vocabulary, tmp_path):
    save_model(str(tmp_path), tiny_model, vocabulary)
    Vocabulary(vocabulary.words + ["extra"]).save(tmp_path / "vocab.json")
    with pytest.raises(ModelError, match=r"model has \d+ words, .*vocab.json has \d+"):
        load_model(str(tmp_path))
    shuffled = vocabulary.words[:4] + vocabulary.words[5:] + vocabulary.words[4:5]
    Vocabulary(shuffled).save(tmp_path / "vocab.json")
    with pytest.raises(ModelError, match="not the one the model was trained with"):
        load_model(str(tmp_path))


def test_missing_model_folder_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="has no model.keras"):
        load_model(str(tmp_path))
