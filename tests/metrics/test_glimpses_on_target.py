import numpy as np
import pytest

from captioner.metrics.glimpses import glimpses_on_target


def test_glimpses_on_target_counts_centres_inside_the_box_per_glimpse():
    # a 40 x 80 image; box rows 10..19, columns 40..59 (exclusive ends 20, 60)
    boxes = np.array([[10, 40, 20, 60], [0, 0, 40, 80]])
    # location -> pixel: row (l + 1) / 2 * 40, column (l + 1) / 2 * 80
    locations = np.array([
        [[-0.25, 0.25], [0.0, 0.0], [-0.5, 0.0]],   # (15, 50) in; (20, 40) out: row 20
        #                                             is past the box; (10, 40) in: corner
        [[0.9, -0.9], [1.5, 0.0], [-1.0, -1.0]],    # in; (50, 40) outside the image; in
    ])
    hits, chance = glimpses_on_target(locations, boxes, 40, 80)
    np.testing.assert_allclose(hits, [1.0, 0.0, 1.0])
    assert chance == pytest.approx((10 * 20 / 3200 + 1.0) / 2)


def test_glimpses_on_target_chance_matches_uniform_locations(rng):
    boxes = np.array([[5, 10, 25, 40]] * 20000)
    hits, chance = glimpses_on_target(rng.uniform(-1, 1, (20000, 1, 2)), boxes, 50, 60)
    assert hits[0] == pytest.approx(chance, abs=0.01)  # 600 / 3000 = 0.2
    with pytest.raises(ValueError, match="Expected locations"):
        glimpses_on_target(np.zeros((3, 2)), boxes[:3], 50, 60)
