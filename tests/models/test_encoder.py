"""The CNN encoder: the grid each backbone gives, uint8 and float inputs alike, a frozen
backbone's batch statistics, weights files, and the .keras round trip."""

import numpy as np
import pytest
from keras import ops

from captioner.data.images import scale_pixels
from captioner.errors import ModelError
from captioner.models.encoder import Encoder, build_backbone
from tests.helpers import run_layer_test

pytestmark = pytest.mark.backend


@pytest.mark.parametrize("backbone, size, grid", [("small", 32, (4, 4)), ("small", 96, (12, 12)),
                                                  ("mobilenet_v2", 64, (2, 2))])
def test_the_grid_follows_the_backbone_and_the_image_size(backbone, size, grid, rng):
    encoder = Encoder(backbone, size, width=4)
    assert encoder.grid_shape == grid
    images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    features = ops.convert_to_numpy(encoder(images))
    assert features.shape == (2,) + grid + (encoder.feature_dim,)
    assert encoder.compute_output_shape((2, size, size, 3)) == features.shape


def test_uint8_pixels_are_scaled_as_floats_already_scaled_are_not(rng):
    encoder = Encoder("small", 32, width=4)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    from_uint8 = ops.convert_to_numpy(encoder(images))
    from_float = ops.convert_to_numpy(encoder(scale_pixels(images.astype("float32"), "small")))
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-5)


def test_a_frozen_backbone_keeps_its_batch_statistics_in_training(rng):
    frozen = Encoder("small", 32, width=4, fine_tune=False)
    assert not frozen.backbone.trainable and not frozen.trainable_weights
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    before = [np.asarray(w) for w in frozen.non_trainable_weights]
    frozen(images, training=True)
    for a, b in zip(before, frozen.non_trainable_weights):
        np.testing.assert_array_equal(a, np.asarray(b))
    trained = Encoder("small", 32, width=4)
    moving = [np.asarray(w) for w in trained.non_trainable_weights]
    trained(images, training=True)
    assert any(not np.allclose(a, np.asarray(b)) for a, b in
               zip(moving, trained.non_trainable_weights))


def test_weights_files_load_and_bad_ones_are_one_clear_error(tmp_path):
    source = build_backbone("small", 32, width=4)
    path = str(tmp_path / "small.weights.h5")
    source.save_weights(path)
    loaded = build_backbone("small", 32, width=4, weights=path)
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="Weights file not found"):
        build_backbone("small", 32, width=4, weights=str(tmp_path / "none.h5"))
    with pytest.raises(ModelError, match="Cannot load weights"):
        build_backbone("small", 32, width=8, weights=path)  # another width
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_backbone("small", 32, width=4, weights="imagenet")


def test_the_encoder_round_trips_through_its_config(rng):
    encoder = Encoder("small", 32, width=4, fine_tune=False, name="encoder")
    run_layer_test(encoder, rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
                   expected_shapes=[(2, 4, 4, 16)])
    again = Encoder.from_config(encoder.get_config())
    assert (again.backbone_name, again.image_size, again.width, again.fine_tune,
            again.grid_shape, again.feature_dim) == ("small", 32, 4, False, (4, 4), 16)
