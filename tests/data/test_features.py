"""The feature cache: computed once, reused when nothing changed, rebuilt when anything did."""

import os

import numpy as np
import pytest
from keras import ops

from captioner.data.features import FeatureCache
from captioner.data.images import load_image
from captioner.models.encoder import Encoder
from tests.helpers import preprocess_image

pytestmark = pytest.mark.backend

@pytest.fixture(scope="module")
def paths(synthetic_coco):
    folder = os.path.join(synthetic_coco, "val2017")
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))][:4]


def frozen(backbone="small", image_size=32, width=4, seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    encoder = Encoder(backbone, image_size, width, fine_tune=False)
    return encoder


def test_features_equal_the_encoder_output_and_are_reused(paths, tmp_path):
    encoder = frozen()
    first = FeatureCache(encoder, paths, str(tmp_path), batch_size=3, progress=False)
    assert first.built
    images = np.stack([preprocess_image(load_image(p), 32, "small") for p in paths])
    expected = ops.convert_to_numpy(encoder(images)).reshape(4, 16, 16)  # (N, H*W, D)
    np.testing.assert_allclose(first.batch([2, 0])[0], expected[[2, 0]], rtol=1e-5, atol=1e-6)
    again = FeatureCache(encoder, paths, str(tmp_path), progress=False)
    assert not again.built and again.key == first.key
    np.testing.assert_array_equal(again.batch([0, 1, 2, 3])[0], first.batch([0, 1, 2, 3])[0])
    names = sorted(os.listdir(tmp_path))  # the store, and the lock it was built under
    assert names == [f".{first.key}.lock", f"{first.key}.json", f"{first.key}.npy"]


def test_another_backbone_image_size_or_weights_gives_another_store(paths, tmp_path):
    base = FeatureCache(frozen(), paths, str(tmp_path), progress=False).key
    others = [FeatureCache(frozen(image_size=40), paths, str(tmp_path), progress=False),
              FeatureCache(frozen(seed=1), paths, str(tmp_path), progress=False),
              FeatureCache(frozen("mobilenet_v2"), paths, str(tmp_path), progress=False)]
    assert all(other.built for other in others)
    assert len({base} | {other.key for other in others}) == 4


def test_a_changed_image_file_rebuilds(paths, tmp_path):
    copies = []
    for index, path in enumerate(paths[:2]):
        copy = tmp_path / f"image{index}.png"
        copy.write_bytes(open(path, "rb").read())
        copies.append(str(copy))
    encoder = frozen()
    before = FeatureCache(encoder, copies, str(tmp_path / "cache"), progress=False)
    copy = tmp_path / "image1.png"
    copy.write_bytes(open(paths[3], "rb").read())  # another picture under the same name
    after = FeatureCache(encoder, copies, str(tmp_path / "cache"), progress=False)
    assert after.built and after.key != before.key
    assert not np.allclose(after.batch([1])[0], before.batch([1])[0])
    np.testing.assert_array_equal(after.batch([0])[0], before.batch([0])[0])


def test_a_training_encoder_is_refused(paths, tmp_path):
    with pytest.raises(ValueError, match="frozen"):
        FeatureCache(Encoder("small", 32, 4, fine_tune=True), paths, str(tmp_path))


def test_a_float16_store_takes_half_the_disk_and_keeps_the_features(paths, tmp_path):
    encoder = frozen()
    wide = FeatureCache(encoder, paths, str(tmp_path), progress=False)
    half = FeatureCache(encoder, paths, str(tmp_path), dtype="float16", progress=False)
    assert half.built and half.key != wide.key and half.features.dtype == np.float16
    assert os.path.getsize(half.path) < 0.6 * os.path.getsize(wide.path)
    np.testing.assert_allclose(half.batch([0, 3])[0], wide.batch([0, 3])[0], rtol=2e-3,
                               atol=1e-3)


def test_a_damaged_store_is_built_again_and_a_killed_build_leaves_nothing(paths, tmp_path,
                                                                         capfd):
    encoder = frozen()
    first = FeatureCache(encoder, paths, str(tmp_path), progress=False)
    key, expected = first.key, first.batch([0, 1, 2, 3])[0]
    del first
    with open(tmp_path / f"{key}.npy", "r+b") as handle:
        handle.truncate(1000)  # cut short
    (tmp_path / f".{key}.npy.partial-2.npy").write_bytes(b"what a killed build left")
    (tmp_path / ".x.npy.partial-1.npy").write_bytes(b"another store's: not ours to remove")
    again = FeatureCache(encoder, paths, str(tmp_path), progress=False)
    size = os.path.getsize(tmp_path / f"{key}.npy")
    assert again.built and f"has 1000 bytes, not the {size} written: building it again" in \
        capfd.readouterr().err
    np.testing.assert_array_equal(again.batch([0, 1, 2, 3])[0], expected)
    assert sorted(os.listdir(tmp_path)) == [f".{key}.lock", ".x.npy.partial-1.npy",
                                            f"{key}.json", f"{key}.npy"]
