"""The grounding head (``captioner.models.grounding``) and grounded decoding: NumPy
references, what the loss counts, save -> load, and that under grounded decoding an
object word agrees with what the head reads where the model looked."""

import dataclasses

import numpy as np
import pytest
from keras import ops

from captioner.config import GroundingConfig, SearchConfig
from captioner.data.coco import load_coco_split
from captioner.data.regions import grounding_config
from captioner.errors import ModelError
from captioner.models.captioner import create_captioner
from captioner.models.grounding import GroundingHead, grounding_loss
from captioner.search import BeamSampler, CompiledSearch, GreedySampler
from captioner.tasks import ImageCaptioner
from tests.conftest import tiny_config
from tests.helpers import search_of

pytestmark = pytest.mark.backend

CONFIG = GroundingConfig(categories=["circle", "square", "star"],
                         attributes={"color": ["black", "white"]},
                         words=[[4, 0], [5, 1], [6, 2], [7, 3], [8, 4], [9, 0]], units=8)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_the_head_reads_the_attended_place_and_scores_the_words_that_name_its_labels():
    rng = np.random.default_rng(0)
    head = GroundingHead(12, CONFIG)
    alphas = rng.dirichlet(np.ones(6), size=(2, 3)).astype("float32")  # (B, T, L)
    features = rng.normal(size=(2, 6, 5)).astype("float32")
    logits = ops.convert_to_numpy(head(alphas, features))
    read = np.einsum("btl,bld->btd", alphas, features)
    hidden = np.maximum(read @ ops.convert_to_numpy(head.hidden.kernel)
                        + ops.convert_to_numpy(head.hidden.bias), 0)
    expected = hidden @ ops.convert_to_numpy(head.classes.kernel) \
        + ops.convert_to_numpy(head.classes.bias)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    scores = ops.convert_to_numpy(head.word_scores(alphas[:, 0], features))  # (B, V)
    shape, colour = log_softmax(expected[:, 0, :3]), log_softmax(expected[:, 0, 3:])
    shape, colour = (shape - shape.max(-1, keepdims=True),  # the reading itself scores 0
                     colour - colour.max(-1, keepdims=True))
    np.testing.assert_allclose(scores[:, [4, 5, 6, 9]], shape[:, [0, 1, 2, 0]], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(scores[:, [7, 8]], colour, rtol=1e-5, atol=1e-6)
    assert not scores[:, [0, 1, 2, 3, 10, 11]].any()  # the words that name nothing


def test_the_loss_is_the_cross_entropy_of_the_labelled_words_and_groups():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 5)).astype("float32")
    labels = np.full((2, 4, 2), -1, "int32")
    labels[0, 1] = [2, 0]
    labels[1, 2] = [1, -1]   # an object without a colour
    labels[1, 3] = [0, 1]    # on a padded step
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], "float32")
    pairs = [(0, 1, slice(0, 3), 2), (0, 1, slice(3, 5), 0), (1, 2, slice(0, 3), 1)]
    expected = np.mean([-log_softmax(logits[b, t, part])[label] for b, t, part, label in pairs])
    loss = grounding_loss(logits, labels, mask, [3, 2])
    np.testing.assert_allclose(ops.convert_to_numpy(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("decoder", ["lstm", "transformer"])
def test_a_captioner_with_a_head_saves_and_loads_it_and_searches_grounded(
        tmp_path, synthetic_coco, vocabulary, decoder):
    from captioner.config import ModelConfig
    from captioner.saving import load_keras_file
    config = tiny_config(vocabulary)
    if decoder == "transformer":
        config = ModelConfig.from_dict({**config.to_dict(), "decoder": {
            "kind": "transformer", "layers": 1, "heads": 2, "model_width": 16, "ff_width": 32}})
    config.grounding = grounding_config(load_coco_split(synthetic_coco, "train")[1], vocabulary)
    model = create_captioner(config, seed=1)
    inputs = {"images": np.random.default_rng(2).integers(0, 255, (2, 32, 32, 3), "uint8"),
              "tokens": np.array([[1, 5, 6], [1, 7, 8]], "int32")}
    before = {k: ops.convert_to_numpy(v) for k, v in model(inputs).items()}
    assert before["grounding"].shape == (2, 3, sum(len(g) for _, g in config.grounding.groups()))
    model.save(tmp_path / "m.keras")
    loaded = load_keras_file(tmp_path / "m.keras")
    after = {k: ops.convert_to_numpy(v) for k, v in loaded(inputs).items()}
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(loaded.grounding.table, model.grounding.table)
    for beam in (1, 3):  # grounded search compiles and runs for either decoder
        search = search_of(loaded, vocabulary, 6, beam_size=beam, grounded=1.0)
        hypotheses = search.hypotheses(search.predict_on_batch({"images": inputs["images"]}))
        assert len(hypotheses) == 2 and all(len(h[0]["tokens"]) <= 6 for h in hypotheses)


@pytest.fixture
def grounded_model(synthetic_coco, vocabulary):
    """A model with a head that reads the attended place only (no cells: number words are
    not judged, so that every object word is judged by the place alone)."""
    config = tiny_config(vocabulary)
    config.grounding = dataclasses.replace(
        grounding_config(load_coco_split(synthetic_coco, "train")[1], vocabulary), cells=False,
        centres=False)
    return create_captioner(config, seed=3)


@pytest.mark.parametrize("beam", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_under_grounded_decoding_each_object_word_agrees_with_what_the_head_reads(
        grounded_model, vocabulary, beam):
    """The decoder made to write a shape at every step (a large bias on the shape words),
    which shape is its own guess; under grounded decoding with a large weight it is the
    head's reading of the place attended for that word (read back from the hypothesis'
    own maps), and without, as often as not another."""
    model = grounded_model
    grounding = model.model_config.grounding
    categories = len(grounding.categories)
    category = {word: column for word, column in grounding.words if column < categories}
    bias = ops.convert_to_numpy(model.decoder.logits.bias).copy()
    bias[list(category)] += 1e4  # beyond any re-scoring below
    model.decoder.logits.bias.assign(bias)
    kernel = model.grounding.classes.kernel
    kernel.assign(10.0 * ops.convert_to_numpy(kernel))  # a head sure of its readings
    images = np.random.default_rng(4).integers(0, 255, (6, 32, 32, 3), "uint8")
    features = model.encode(images)

    def agreement(weight):
        search = search_of(model, vocabulary, 10, beam_size=beam, n_best=beam,
                           grounded=weight)
        hypotheses = search.hypotheses(search.predict_on_batch({"images": images}))
        found = agree = 0
        for image, options in enumerate(hypotheses):
            for position, word in enumerate(options[0]["tokens"]):
                alpha = options[0]["alphas"][position][None].astype("float32")
                logits = ops.convert_to_numpy(model.grounding(alpha, features[image:image + 1]))
                found += 1
                agree += int(np.argmax(logits[0, :categories]) == category[word])
        return found, agree
    found, agree = agreement(100.0)
    assert found >= 30 and agree == found
    found, agree = agreement(0.0)
    assert found >= 30 and agree < found
    sampler = BeamSampler(beam, beam) if beam > 1 else GreedySampler()
    plain = CompiledSearch(model, sampler, vocabulary.start_id, vocabulary.end_id,
                           10).predict_on_batch({"images": images})
    zero = search_of(model, vocabulary, 10, beam_size=beam, n_best=beam,
                     grounded=0.0).predict_on_batch({"images": images})
    for key, value in plain.items():
        np.testing.assert_array_equal(zero[key], value)


def test_grounded_decoding_without_a_head_is_refused(vocabulary):
    model = create_captioner(tiny_config(vocabulary), seed=0)
    with pytest.raises(ModelError, match="grounding head"):
        search_of(model, vocabulary, 10, grounded=1.0)
    assert ImageCaptioner(model, vocabulary).search_config(SearchConfig()).grounded == 0.0


def test_the_cell_loss_is_the_objectness_and_label_cross_entropy_per_cell():
    from captioner.models.grounding import cell_loss
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 4, 1 + 5)).astype("float32")  # objectness, 3 + 2 labels
    labels = np.full((2, 4, 2), -1, "int32")
    labels[0, 1] = [2, 0]
    labels[1, 3] = [1, -1]  # an object without a colour
    rows = np.array([1.0, 0.0], "float32")  # the second row is filler: not counted
    present = labels[..., 0] >= 0
    sigmoid = 1 / (1 + np.exp(-logits[..., 0]))
    binary = -np.where(present, np.log(sigmoid), np.log(1 - sigmoid))[0].sum()
    labelled = -log_softmax(logits[0, 1, 1:4])[2] - log_softmax(logits[0, 1, 4:6])[0]
    loss = cell_loss(logits, labels, rows, [3, 2])
    np.testing.assert_allclose(ops.convert_to_numpy(loss), (binary + labelled) / 4, rtol=1e-5)


def test_with_centres_the_cell_loss_adds_the_centre_cross_entropy_per_cell():
    from captioner.models.grounding import cell_loss
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(2, 4, 1 + 5 + 1)).astype("float32")  # ..., centre last
    labels = np.full((2, 4, 3), -1, "int32")
    labels[..., 2] = 0
    labels[0, 1] = [2, 0, 1]  # an object whose centre is in this cell
    labels[0, 2] = [2, 0, 0]  # ... and covers this one too
    rows = np.array([1.0, 0.0], "float32")
    centre = 1 / (1 + np.exp(-logits[0, :, -1]))
    expected = cell_loss(logits[..., :-1], labels[..., :2], rows, [3, 2]) * 4 - np.sum(
        np.where(labels[0, :, 2] == 1, np.log(centre), np.log(1 - centre)))
    loss = cell_loss(logits, labels, rows, [3, 2])
    np.testing.assert_allclose(ops.convert_to_numpy(loss), expected / 4, rtol=1e-5)
