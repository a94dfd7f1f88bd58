"""Out-of-domain marking: the distance against NumPy, the summary's JSON, and on the
bundled model that synthetic test images pass while photographs are marked."""

import json
import os

import numpy as np
import pytest

from captioner.domain import Domain, image_statistics, summarise
from captioner.errors import ModelError
from tests.conftest import ROOT
from tests.helpers import run_command

SITE = os.path.dirname(os.path.dirname(np.__file__))
PHOTOS = [os.path.join(SITE, "matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
          os.path.join(SITE, "sklearn", "datasets", "images", "china.jpg"),
          os.path.join(SITE, "sklearn", "datasets", "images", "flower.jpg")]


def test_with_every_component_the_distance_is_mahalanobis(rng):
    statistics = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    domain = Domain.fit(statistics, components=64)  # keeps 5 of 6: the 6th is the rest
    points = rng.normal(size=(4, 6)) * 3
    centred = points - statistics.mean(0)
    squared = np.einsum("nf,fg,ng->n", centred, np.linalg.inv(np.cov(statistics.T)), centred)
    np.testing.assert_allclose(domain.distance(points), np.sqrt(squared / 6), rtol=1e-8)


def test_the_threshold_passes_the_held_out_images_with_a_margin(rng):
    train, held_out = rng.normal(size=(300, 8)), rng.normal(size=(50, 8)) * 1.2
    domain = Domain.fit(train, held_out, components=4, margin=1.25)
    assert domain.threshold == pytest.approx(1.25 * max(
        np.quantile(domain.distance(train), 0.999), domain.distance(held_out).max()))
    assert not any(flag["out_of_domain"] for flag in domain.flags(held_out))
    assert all(flag["out_of_domain"] for flag in domain.flags(train[:5] + 20.0))


def test_the_summary_round_trips_through_json_and_refuses_others(rng):
    statistics = rng.normal(size=(100, 10))
    domain = Domain.fit(statistics, components=4)
    loaded = Domain.from_dict(json.loads(json.dumps(domain.to_dict())))
    np.testing.assert_allclose(loaded.distance(statistics), domain.distance(statistics),
                               rtol=1e-5)
    assert loaded.threshold == domain.threshold
    with pytest.raises(ModelError, match="not a domain summary"):
        Domain.from_dict({"format": "captioner-domain/1", "mean": [0.0]})
    with pytest.raises(ModelError, match="not a domain summary"):
        Domain.from_dict(["not", "a", "dict"])


@pytest.mark.backend
def test_the_bundled_model_passes_its_test_images_and_marks_photographs(synthetic_coco):
    from captioner.data.coco import load_coco_split
    from captioner.tasks import ImageCaptioner
    from captioner.training.captioning import DOMAIN_IMAGES
    saved = ImageCaptioner.from_folder(os.path.join(ROOT, "assets", "model"))
    assert saved.domain is not None and saved.domain.images == DOMAIN_IMAGES  # of 4,000
    test, _ = load_coco_split(synthetic_coco, "test")  # the same generator, another seed
    results = saved.caption([r.path for r in test] + PHOTOS)
    flags = [result.out_of_domain for result in results]
    assert flags == [False] * len(test) + [True] * len(PHOTOS)
    distances = [result.domain_distance for result in results]
    assert max(distances[:len(test)]) < saved.domain.threshold < min(distances[len(test):])


@pytest.mark.backend
def test_a_summary_is_of_the_training_images_and_passes_the_held_out(tiny_model,
                                                                     synthetic_coco):
    from captioner.data.coco import load_coco_split
    from captioner.data.images import load_resized
    records, _ = load_coco_split(synthetic_coco, "train")
    val, _ = load_coco_split(synthetic_coco, "val")
    paths = [r.path for r in records]
    domain = summarise(tiny_model, paths, [r.path for r in val], limit=20)
    assert domain.images == 20  # drawn from the 24
    held_out = np.stack([load_resized(r.path, 32) for r in val])
    statistics = image_statistics(tiny_model, held_out)
    assert statistics.shape == (len(val), 2 * tiny_model.encoder.feature_dim)
    assert domain.distance(statistics).max() * 1.25 <= domain.threshold * (1 + 1e-9)
    assert summarise(tiny_model, paths[:2]) is None  # too few to say what is unusual


def test_caption_py_marks_a_photograph_in_text_and_json(tmp_path):
    sample = os.path.join(ROOT, "assets", "samples", "shapes_004201.png")
    from captioner.commands.caption import main
    command = [sample, PHOTOS[0], "--attention-dir", tmp_path]
    text = run_command(main, *command)
    assert text.returncode == 0, text.stderr[-2000:]
    lines = text.stdout.strip().splitlines()
    assert "out of domain" not in lines[0] and "out of domain" in lines[1]
    # the photograph's caption is preceded, on standard error, by what the model knows
    notes = [line for line in text.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: {PHOTOS[0]} is unlike the images this model was trained on "
                     "(captioner synthetic shapes, simple style, seed 0: COCO layout "
                     "data/synthetic): its caption is likely wrong (to caption such images, "
                     "train on them: docs/guides/train-coco.md)"]
    as_json = run_command(main, *command, "--json")
    assert as_json.stderr.count("note: ") == 1
    results = json.loads(as_json.stdout)
    assert [r["out_of_domain"] for r in results] == [False, True]
    assert results[1]["domain_distance"] > results[1]["domain_threshold"] \
        >= results[0]["domain_distance"]
