"""Translated and cluttered digits, and folders of labelled images, for the RAM."""

import numpy as np
import pytest
from PIL import Image

from captioner.data.classification import (
    DigitBatches,
    FolderBatches,
    cluttered,
    image_folder,
    ink_boxes,
    load_digits,
    translated,
)
from captioner.errors import DataError


def test_sklearn_digits_load_scaled_to_24_pixels():
    images, labels = load_digits("sklearn")
    assert images.shape == (1797, 24, 24) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and set(labels) == set(range(10))


def test_translated_places_each_digit_whole_at_its_corner(rng):
    digits = rng.random((5, 6, 6)).astype("float32") + 0.1
    images, corners = translated(digits, 20, rng)
    assert images.shape == (5, 20, 20, 1)
    for image, digit, (row, col) in zip(images, digits, corners):
        np.testing.assert_array_equal(image[row:row + 6, col:col + 6, 0], digit)
        assert image.sum() == pytest.approx(digit.sum(), rel=1e-5)  # nothing else drawn
    with pytest.raises(DataError, match="does not fit"):
        translated(digits, 5, rng)


def test_clutter_adds_fragments_and_keeps_the_digit(rng):
    digits = np.zeros((3, 10, 10), "float32")
    digits[:, 2:8, 2:8] = 0.5
    images, corners = translated(digits, 40, rng)
    before = images.copy()
    cluttered(images, np.ones((4, 10, 10), "float32"), pieces=4, piece=8, rng=rng)
    assert (images >= before).all() and (images.sum((1, 2, 3)) > before.sum((1, 2, 3))).all()


def test_ink_boxes_frame_the_digit_where_it_was_placed(rng):
    digits = np.zeros((2, 10, 10), "float32")
    digits[0, 2:5, 3:9] = 1.0           # rows 2-4, columns 3-8
    digits[1, 7, 0] = digits[1, 9, 1] = 0.5
    digits[1, 0, 9] = 0.05              # below the threshold: not ink
    images, corners = translated(digits, 30, rng)
    boxes = ink_boxes(digits, corners)
    (r0, c0), (r1, c1) = corners
    np.testing.assert_array_equal(boxes, [[r0 + 2, c0 + 3, r0 + 5, c0 + 9],
                                          [r1 + 7, c1 + 0, r1 + 10, c1 + 2]])
    for image, (top, left, bottom, right) in zip(images, boxes):
        inside = image[top:bottom, left:right, 0]
        assert (inside > 0.1).sum() == (image > 0.1).sum()  # all ink inside the box
        assert (inside[0] > 0.1).any() and (inside[-1] > 0.1).any()  # and the box is tight
    fixed = DigitBatches(digits, [0, 1], canvas=30, batch_size=2, seed=4, fixed=True)
    top, left, bottom, right = fixed.boxes[0]
    assert fixed.images[0, top:bottom, left:right, 0].sum() == pytest.approx(18.0)


def test_training_batches_are_a_function_of_seed_and_epoch(rng):
    digits = rng.random((20, 6, 6)).astype("float32")
    labels = np.arange(20) % 10
    batches = DigitBatches(digits, labels, canvas=16, batch_size=8, seed=3)
    batches.set_epoch(2)
    first = batches[1]
    again = DigitBatches(digits, labels, canvas=16, batch_size=8, seed=3)
    again.set_epoch(2)
    np.testing.assert_array_equal(again[1][0], first[0])
    again.set_epoch(3)
    assert not np.array_equal(again[1][0], first[0])
    fixed = DigitBatches(digits, labels, canvas=16, batch_size=8, seed=1, fixed=True)
    fixed.set_epoch(5)
    np.testing.assert_array_equal(fixed[0][0], fixed.images[:8])
    assert len(batches) == 3


def test_a_last_training_batch_is_filled_up_at_weight_0_and_shared_among_processes(rng):
    digits = rng.random((20, 6, 6)).astype("float32")
    labels = np.arange(20)
    batches = DigitBatches(digits, labels, canvas=16, batch_size=8, seed=3)
    images, last, weights = batches[2]  # 4 digits left for the last batch of 8
    assert images.shape[0] == 8 and weights.tolist() == [1] * 4 + [0] * 4
    assert np.array_equal(last[4:], last[:4])  # its own rows again
    _, middle, _ = batches[1]
    batches.shard = (1, 2)
    _, second_half, half_weights = batches[1]
    assert np.array_equal(second_half, middle[4:]) and half_weights.tolist() == [1] * 4


def test_image_folder_reads_one_folder_per_class(tmp_path):
    for name, value in (("cats", 40), ("dogs", 200)):
        (tmp_path / name).mkdir()
        for index in range(2):
            Image.new("RGB", (30, 20), (value, value, value)).save(tmp_path / name / f"{index}.png")
    paths, labels, classes = image_folder(str(tmp_path))
    assert classes == ["cats", "dogs"] and list(labels) == [0, 0, 1, 1]
    images, batch_labels = FolderBatches(paths, labels, 8, 10, 1, batch_size=4, shuffle=False)[0]
    assert images.shape == (4, 8, 10, 1)
    np.testing.assert_allclose(images[:, 0, 0, 0], np.array([40, 40, 200, 200]) / 255, atol=1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images in class folder"):
        image_folder(str(tmp_path))
    with pytest.raises(DataError, match="not found"):
        image_folder(str(tmp_path / "nowhere"))
