"""Property: whatever bytes a file holds, ``load_image`` returns an (H, W, 3) uint8 RGB
array or raises ImageError, within 5 seconds, and never another exception (a longer run:
``tests/harness/fuzz_images.py``)."""

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import SEEDS, broken, outcome


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_any_broken_file_is_an_rgb_array_or_an_image_error(name, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    seen = set()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=broken(name))
    def check(data):
        seen.add(outcome(data, folder))
    check()
    assert "refused" in seen  # the strategy does break files


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_unbroken_seed_decodes(name, tmp_path):
    assert outcome(SEEDS[name], tmp_path) == "decoded"


def test_a_tiff_whose_strip_offsets_are_text_is_an_image_error(tmp_path):
    """What the longer fuzzing run found: Pillow raised TypeError for it."""
    data = SEEDS["tiff"]
    entry = data.index(b"\x11\x01\x04\x00")  # tag 273, StripOffsets, of type LONG
    broken_tiff = data[:entry + 2] + b"\x02\x00" + data[entry + 4:]  # now of type ASCII
    assert outcome(broken_tiff, tmp_path) == "refused"
