"""Self-critical sequence training: samples follow the model, the surrogate pushes the
right way, rewards are CIDEr-D minus the penalty, and a run resumes exactly."""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from captioner.config import TrainConfig, preset
from captioner.data.coco import load_coco_split
from captioner.metrics.cider import CiderD
from captioner.models.captioner import create_captioner
from captioner.search import SelfCriticalSearch
from captioner.text import tokenize
from captioner.training.captioning import CaptionTrainer, TrainingData
from captioner.training.scst import Rewards, SelfCriticalTrainer, teacher_forcing
from tests.conftest import tiny_config
from tests.helpers import run_command

pytestmark = pytest.mark.backend


def _images(rng, count, size=32):
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _search(model, vocabulary, samples, max_length=6):
    return SelfCriticalSearch(model, vocabulary.start_id, vocabulary.end_id, max_length,
                              samples)


def _decode(search, images, noise):
    outputs = search.predict_on_batch({"images": images, "noise": noise})
    return {key: np.asarray(value) for key, value in outputs.items()}


def _sequence_log_probs(model, images, tokens, targets, mask):
    """log p of each caption, teacher-forced as self-critical training reads it."""
    out = model({"images": images, "tokens": tokens,
                 "advantage": np.zeros(len(tokens), np.float32)}, training=True)
    log_probs = ops.convert_to_numpy(ops.log_softmax(out["logits"], axis=-1))
    picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    return (picked * mask).sum(1), picked


def test_samples_follow_the_models_distribution_and_are_read_back_as_drawn(vocabulary, rng):
    """Gumbel-max samples: the first words' frequencies are the model's probabilities;
    without noise they are the greedy captions; and the teacher-forced pass of training
    (dropout on in the model, off for self-critical batches) gives the log-probabilities
    the search drew them with."""
    model = create_captioner(tiny_config(vocabulary, dropout=0.5), seed=1)
    images = _images(rng, 1)
    draws = 3000
    search = _search(model, vocabulary, draws)
    noise = rng.gumbel(size=(draws, 7, len(vocabulary))).astype(np.float32)
    out = _decode(search, images, noise)
    first = model({"images": images, "tokens": np.full((1, 1), vocabulary.start_id)})
    probabilities = ops.convert_to_numpy(ops.softmax(first["logits"][0, 0]))
    frequencies = np.bincount(out["sampled_words"][:, 0], minlength=len(vocabulary)) / draws
    np.testing.assert_allclose(frequencies, probabilities, atol=0.02)
    assert len(np.unique(out["sampled_words"][:, 0])) > 5  # they do vary

    quiet = _decode(_search(model, vocabulary, 2), images, np.zeros((2, 7, len(vocabulary)),
                                                                   np.float32))
    for row in range(2):
        np.testing.assert_array_equal(quiet["sampled_words"][row], quiet["greedy_words"][0])

    few = {key: value[:8] for key, value in out.items() if key.startswith("sampled_")}
    tokens, targets, mask = teacher_forcing(few, "sampled_", vocabulary)
    _, picked = _sequence_log_probs(model, images, tokens, targets, mask)
    for row in range(8):
        length = int(few["sampled_lengths"][row])
        np.testing.assert_allclose(picked[row, :length], few["sampled_log_probs"][row, :length],
                                   atol=1e-4)


@pytest.mark.slow  # trains
def test_the_surrogate_makes_better_than_greedy_captions_likelier(vocabulary, rng):
    """One SGD step on sampled captions with advantage +1 raises their log-probability;
    with -1 it lowers it; with 0 nothing moves."""
    images = _images(rng, 2)
    for advantage, direction in ((1.0, 1), (-1.0, -1), (0.0, 0)):
        model = create_captioner(tiny_config(vocabulary), seed=2)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        out = _decode(_search(model, vocabulary, 3), images,
                      np.random.default_rng(5).gumbel(size=(6, 7, len(vocabulary)))
                      .astype(np.float32))
        tokens, targets, mask = teacher_forcing(out, "sampled_", vocabulary)
        before, _ = _sequence_log_probs(model, images, tokens, targets, mask)
        model.train_on_batch({"images": images, "tokens": tokens,
                              "advantage": np.full(6, advantage, np.float32)},
                             targets, sample_weight=mask)
        after, _ = _sequence_log_probs(model, images, tokens, targets, mask)
        if direction == 0:
            np.testing.assert_allclose(after, before, atol=1e-6)
        else:
            assert direction * (after.sum() - before.sum()) > 0.05


def test_teacher_forcing_reads_finished_and_unfinished_captions(vocabulary):
    end, pad, start = vocabulary.end_id, vocabulary.pad_id, vocabulary.start_id
    outputs = {"x_words": np.array([[7, 8, end, end], [5, 6, 7, 8]]),
               "x_lengths": np.array([2, 4]), "x_finished": np.array([True, False])}
    tokens, targets, mask = teacher_forcing(outputs, "x_", vocabulary)
    np.testing.assert_array_equal(tokens, [[start, 7, 8, pad, pad], [start, 5, 6, 7, 8]])
    np.testing.assert_array_equal(targets, [[7, 8, end, pad, pad], [5, 6, 7, 8, pad]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])


def test_the_reward_is_cider_d_minus_the_penalty_per_absent_object(synthetic_coco):
    records, instances = load_coco_split(synthetic_coco, "train")
    rewards = Rewards(records, instances, penalty=0.5)
    objects = instances[records[0].image_id]
    present = f"a {objects[0]['attributes']['color']} {objects[0]['category']}"
    colours = {"red", "green", "blue", "yellow", "purple"} - {
        o["attributes"]["color"] for o in objects if o["category"] == "circle"}
    absent = f"a {sorted(colours)[0]} circle and {present[2:]}"
    captions = [present.split(), absent.split(), tokenize(records[0].captions[0])]
    scored = rewards([0, 0, 0], captions)
    cider = CiderD([[tokenize(c) for c in r.captions] for r in records])
    np.testing.assert_allclose(scored.cider, cider.scores([0, 0, 0], captions))
    np.testing.assert_array_equal(scored.absent, [0, 1, 0])
    np.testing.assert_allclose(scored.reward, scored.cider - 0.5 * np.array([0, 1, 0]))
    assert scored.cider[2] > scored.cider[0]  # a reference scores best


def test_a_mispaired_mention_costs_the_mispairing_penalty_too(synthetic_coco):
    records, instances = load_coco_split(synthetic_coco, "train")
    index = next(i for i, r in enumerate(records)
                 if len({o["category"] for o in instances[r.image_id]}) > 1
                 and len({o["attributes"]["color"] for o in instances[r.image_id]}) > 1)
    objects = instances[records[index].image_id]
    first = objects[0]
    other = next(o for o in objects if o["category"] != first["category"]
                 and o["attributes"]["color"] != first["attributes"]["color"]
                 and not any(p["category"] == first["category"]
                             and p["attributes"]["color"] == o["attributes"]["color"]
                             for p in objects))
    swapped = f"a {other['attributes']['color']} {first['category']}".split()  # both there
    right = f"a {first['attributes']['color']} {first['category']}".split()
    scored = Rewards(records, instances, penalty=0.5, mispairing=2.0)([index, index],
                                                                     [swapped, right])
    np.testing.assert_array_equal(scored.absent, [1, 0])
    np.testing.assert_allclose(scored.reward, scored.cider - np.array([0.5 + 2.0, 0.0]))


def _ce_model(synthetic_coco, out):
    train, _ = load_coco_split(synthetic_coco, "train")
    val, _ = load_coco_split(synthetic_coco, "val")
    config = TrainConfig.of(epochs=1, batch_size=8, learning_rate=5e-3, seed=4,
                         validation_images=3, max_words=8, pipeline="python")
    CaptionTrainer(TrainingData(train, val[:3], "test data"), str(out), preset("tiny"),
                   config).run(progress=False)
    return str(out)


@pytest.mark.slow
def test_a_self_critical_run_resumes_exactly(synthetic_coco, tmp_path):
    """Samples, rewards and updates follow from (seed, epoch, step): stopped after one
    epoch and resumed, the run ends with the weights of the uninterrupted one."""
    init = _ce_model(synthetic_coco, tmp_path / "ce")
    train, instances = load_coco_split(synthetic_coco, "train")
    val, val_instances = load_coco_split(synthetic_coco, "val")
    config = TrainConfig.of(epochs=2, batch_size=8, seed=4, validation_images=3, max_words=8,
                         scst=True, scst_samples=2, hallucination_penalty=0.5,
                         scst_learning_rate=1e-3)

    def trainer(name):
        data = TrainingData(train, val[:3], "test data", val_instances, instances)
        return SelfCriticalTrainer(data, str(tmp_path / name), preset("tiny"), config,
                                   init=init)
    straight = trainer("straight").run(progress=False)
    trainer("split").run(progress=False, stop_after=1)
    resumed = trainer("split").run(resume=True, progress=False)
    assert [row["reward"] for row in resumed] == pytest.approx(
        [row["reward"] for row in straight], abs=1e-9)
    assert {"reward", "greedy_reward", "absent", "val_cider"} <= set(straight[0])
    from captioner.saving import load_keras_file
    from captioner.training.checkpoint import latest_model_path
    weights = [load_keras_file(latest_model_path(tmp_path / name)).get_weights()
               for name in ("straight", "split")]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
    moved = load_keras_file(os.path.join(init, "model.keras")).get_weights()
    assert max(np.abs(a - b).max() for a, b in zip(weights[0], moved)) > 1e-4


def _train_py(*args):
    from captioner.commands.train import main
    return run_command(main, *args)


@pytest.mark.parametrize("args, expected", [
    (["--scst"], "--init DIR"),
    (["--hallucination-penalty", "0.5"], "term of the --scst reward"),
    (["--scst", "--init", "{init}", "--attention", "hard"], "fixes --attention"),
])
def test_self_critical_options_are_refused_in_one_line(synthetic_coco, tmp_path, args,
                                                       expected):
    args = [a.replace("{init}", str(tmp_path)) for a in args]
    result = _train_py("--coco", synthetic_coco, "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_py_fine_tunes_self_critically_from_a_model_folder(synthetic_coco, tmp_path):
    init = _ce_model(synthetic_coco, tmp_path / "ce")
    result = _train_py("--coco", synthetic_coco, "--init", init, "--out", str(tmp_path / "sc"),
                       "--scst", "--scst-samples", "2", "--epochs", "1", "--batch-size", "8",
                       "--hallucination-penalty", "0.5", "--attention-supervision", "1",
                       "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "sc" / "metrics.json") as handle:
        metrics = json.load(handle)
    assert "CIDEr" in metrics["test"] and "reward" in metrics["history"][0]
    with open(tmp_path / "sc" / "config.json") as handle:
        config = json.load(handle)
    assert config["model"]["loss"]["attention_supervision"] == 1.0
    assert config["training"]["self_critical"]["scst"] is True
    with open(tmp_path / "sc" / "vocab.json") as a, open(os.path.join(init, "vocab.json")) as b:
        assert json.load(a) == json.load(b)
