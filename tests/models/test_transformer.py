"""The Transformer decoder: its block against a NumPy Transformer layer, causality, the
key/value cache against recomputing the prefix (greedy and beam, hypothesis for
hypothesis, at the bundled model's size), its maps, gradients, overfitting, and
save -> load equality in safe mode."""

import numpy as np
import pytest

from captioner.config import ModelConfig, TransformerConfig
from tests.search.test_compiled import assert_same

pytestmark = pytest.mark.backend


def transformer_config(vocabulary, max_length=12, **decoder):
    """A tiny Transformer captioner's configuration for ``vocabulary``."""
    settings = dict(layers=2, heads=2, model_width=16, ff_width=32, dropout=0.0)
    return ModelConfig(encoder={"image_size": 32, "width": 8},
                       decoder=TransformerConfig(**{**settings, **decoder}),
                       vocab_size=len(vocabulary), vocab_hash=vocabulary.hash,
                       max_length=max_length)


def numpy_layer_norm(x, layer):
    gamma, beta = (np.asarray(w) for w in layer.get_weights())
    mean, variance = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + layer.epsilon) * gamma + beta


def numpy_attention(query, memory, layer, mask):
    """``keras.layers.MultiHeadAttention``'s arithmetic, from its weights."""
    wq, bq, wk, bk, wv, bv, wo, bo = (np.asarray(w) for w in layer.get_weights())
    q = np.einsum("btd,dhk->bthk", query, wq) + bq
    k = np.einsum("bsd,dhk->bshk", memory, wk) + bk
    v = np.einsum("bsd,dhk->bshk", memory, wv) + bv
    scores = np.einsum("bthk,bshk->bhts", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    mixed = np.einsum("bhts,bshk->bthk", weights, v)
    return np.einsum("bthk,hkd->btd", mixed, wo) + bo, weights


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_block_is_a_transformer_layer_in_numpy(norm, rng):
    from keras import ops

    from captioner.models.transformer import TransformerBlock
    block = TransformerBlock(8, 2, 16, dropout=0.0, norm=norm)
    words = rng.normal(size=(2, 5, 8)).astype("float32")
    grid = rng.normal(size=(2, 6, 8)).astype("float32")
    block.build(words.shape, grid.shape)
    outputs, weights = block(words, block.memory_keys(grid))
    causal = np.tril(np.ones((5, 5), bool))[None, None]

    def sublayer(x, norm_layer, compute):
        if norm == "pre":
            return x + compute(numpy_layer_norm(x, norm_layer))
        return numpy_layer_norm(x + compute(x), norm_layer)
    x = sublayer(words, block.self_norm,
                 lambda h: numpy_attention(h, h, block.self_attention, causal)[0])
    found = {}

    def cross(h):
        out, found["weights"] = numpy_attention(h, grid, block.cross_attention, True)
        return out
    x = sublayer(x, block.cross_norm, cross)
    hidden = [np.asarray(w) for w in block.hidden.get_weights()]
    project = [np.asarray(w) for w in block.project.get_weights()]
    x = sublayer(x, block.ff_norm, lambda h: np.maximum(h @ hidden[0] + hidden[1], 0)
                 @ project[0] + project[1])
    np.testing.assert_allclose(ops.convert_to_numpy(outputs), x, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(weights), found["weights"], atol=1e-5)


def test_a_word_sees_only_the_words_before_it(vocabulary, rng):
    from keras import ops

    from captioner.models.captioner import create_captioner
    model = create_captioner(transformer_config(vocabulary), seed=1)
    images = rng.integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    tokens = rng.integers(4, len(vocabulary), (2, 7)).astype("int32")
    changed = tokens.copy()
    changed[:, 4:] = rng.integers(4, len(vocabulary), (2, 3))
    first = model({"images": images, "tokens": tokens})
    second = model({"images": images, "tokens": changed})
    for key in ("logits", "alphas", "attention"):
        np.testing.assert_allclose(ops.convert_to_numpy(first[key])[:, :4],
                                   ops.convert_to_numpy(second[key])[:, :4], atol=1e-5)
    assert ops.convert_to_numpy(first["attention"]).shape == (2, 7, 2, 2, 16)
    # each head's weights over the grid sum to 1, and the map is the last layer's mean
    attention = ops.convert_to_numpy(first["attention"])
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(first["alphas"]),
                               attention[:, :, -1].mean(2), atol=1e-6)


@pytest.mark.parametrize("how", ["last_layer", "all_layers", "first_layer"])
def test_the_maps_reduce_as_documented(how, rng):
    from keras import ops

    from captioner.models.transformer import reduce_maps
    maps = rng.random((3, 4, 2, 5, 6)).astype("float32")
    expected = {"last_layer": maps[..., -1, :, :].mean(-2), "first_layer": maps[..., 0, :, :]
                .mean(-2), "all_layers": maps.mean((-3, -2))}[how]
    np.testing.assert_allclose(ops.convert_to_numpy(reduce_maps(maps, how)), expected,
                               rtol=1e-6)


def hypotheses(model, vocabulary, images, cache, **options):
    from captioner.search import BeamSampler, CompiledSearch, GreedySampler
    model.decoder.kv_cache = cache
    try:
        search = CompiledSearch(model, BeamSampler(**options) if options else GreedySampler(),
                                vocabulary.start_id, vocabulary.end_id,
                                model.model_config.max_length)
        return search.hypotheses(search.predict_on_batch({"images": images}))
    finally:
        model.decoder.kv_cache = True


@pytest.fixture(scope="module")
def bundled_size(vocabulary):
    """A Transformer captioner of the default sizes (d_model 256, 2 layers of 4 heads,
    the small CNN at 96 px: the bundled model's encoder), with a grid encoder layer."""
    from captioner.models.captioner import create_captioner
    config = ModelConfig(decoder=TransformerConfig(layers=2, encoder_layers=1),
                         vocab_size=len(vocabulary), vocab_hash=vocabulary.hash, max_length=16)
    return create_captioner(config, seed=3)


@pytest.mark.parametrize("options", [dict(), dict(beam_size=3, n_best=2),
                                     pytest.param(dict(beam_size=5, n_best=3,
                                                       length_penalty=1.0, min_length=4),
                                                  marks=pytest.mark.slow)],
                         ids=["greedy", "beam3", "beam5"])
def test_the_cache_decodes_as_recomputing_the_prefix(bundled_size, vocabulary, options, rng):
    images = rng.integers(0, 256, (3, 96, 96, 3)).astype("uint8")
    cached = hypotheses(bundled_size, vocabulary, images, True, **options)
    recomputed = hypotheses(bundled_size, vocabulary, images, False, **options)
    assert sum(len(h["tokens"]) for found in cached for h in found) > 0
    assert_same(recomputed, cached)


def test_the_search_matches_the_numpy_reference_search(bundled_size, vocabulary, rng):
    from captioner.search import BeamSampler, CompiledSearch
    from tests.reference_search import beam_search
    images = rng.integers(0, 256, (2, 96, 96, 3)).astype("uint8")
    model, longest = bundled_size, bundled_size.model_config.max_length
    memory = model.decoder.prepare(model.encode(images))
    reference = beam_search(model.decoder.step, model.decoder.initial_state(memory, longest + 1),
                            memory, 2, vocabulary.start_id, vocabulary.end_id, longest,
                            beam_size=3, n_best=2)
    search = CompiledSearch(model, BeamSampler(3, 2), vocabulary.start_id, vocabulary.end_id,
                            longest)
    found = search.hypotheses(search.predict_on_batch({"images": images}))
    for ours, theirs in zip(found, reference):
        assert [h["tokens"] for h in ours] == [h["tokens"] for h in theirs]


def test_the_maps_of_every_head_are_the_searchs_maps(bundled_size, vocabulary, rng):
    """``head_maps`` (one teacher-forced pass) gives, reduced, the maps the search computed
    word by word."""
    from keras import ops

    from captioner.models.transformer import reduce_maps
    from captioner.tasks import ImageCaptioner
    images = rng.integers(0, 256, (3, 96, 96, 3)).astype("uint8")
    found = [h[0] for h in hypotheses(bundled_size, vocabulary, images, True)]
    maps = ImageCaptioner(bundled_size, vocabulary).head_maps(images,
                                                              [h["tokens"] for h in found])
    for hypothesis, heads in zip(found, maps):
        assert heads.shape == (len(hypothesis["tokens"]), 2, 4, 12, 12)
        flat = heads.reshape(heads.shape[:3] + (-1,))
        np.testing.assert_allclose(ops.convert_to_numpy(reduce_maps(flat, "last_layer")),
                                   hypothesis["alphas"], atol=1e-5)


def test_every_weight_gets_a_gradient_and_a_batch_is_learnt(vocabulary, rng):
    from captioner.config import TrainConfig
    from captioner.models.captioner import create_captioner
    from captioner.training.loop import compile_for_training
    model = create_captioner(transformer_config(vocabulary, encoder_layers=1), seed=2)
    images = rng.integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    tokens = rng.integers(4, len(vocabulary), (4, 8)).astype("int32")
    targets = np.concatenate([tokens[:, 1:], np.full((4, 1), vocabulary.end_id)], 1)
    mask = np.ones((4, 8), "float32")
    inputs = {"images": images, "tokens": tokens}
    _assert_every_weight_has_a_gradient(model, inputs, targets, mask)
    compile_for_training(model, TrainConfig(learning_rate=3e-3), steps_per_epoch=100)
    first = model.train_on_batch(inputs, targets, sample_weight=mask, return_dict=True)["nll"]
    for _ in range(150):
        last = model.train_on_batch(inputs, targets, sample_weight=mask, return_dict=True)["nll"]
    assert first > 2.0 and last < 0.1


def _assert_every_weight_has_a_gradient(model, inputs, targets, mask):
    import keras
    if keras.backend.backend() != "tensorflow":
        return  # the same model; TensorFlow's tape is the simplest to ask
    import tensorflow as tf
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)
        loss = model.compute_loss(inputs, targets, outputs, mask)
    gradients = tape.gradient(loss, model.trainable_variables)
    empty = [v.path for v, g in zip(model.trainable_variables, gradients)
             if g is None or not np.any(np.asarray(g))]
    assert empty == []


def test_a_saved_transformer_loads_in_safe_mode_and_decodes_alike(vocabulary, rng, tmp_path):
    import keras
    from keras import ops

    from captioner.models.captioner import create_captioner
    from captioner.models.transformer import TransformerDecoder
    model = create_captioner(transformer_config(vocabulary, encoder_layers=1, norm="post"),
                             seed=4)
    images = rng.integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    tokens = rng.integers(4, len(vocabulary), (2, 6)).astype("int32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.decoder, TransformerDecoder)
    assert loaded.model_config == model.model_config
    for key, value in model({"images": images, "tokens": tokens}).items():
        np.testing.assert_allclose(ops.convert_to_numpy(
            loaded({"images": images, "tokens": tokens})[key]), ops.convert_to_numpy(value),
            atol=1e-6)
    assert [h[0]["tokens"] for h in hypotheses(loaded, vocabulary, images, True)] == \
        [h[0]["tokens"] for h in hypotheses(model, vocabulary, images, True)]
