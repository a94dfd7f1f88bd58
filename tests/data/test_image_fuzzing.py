"""Property: whatever bytes a file holds, ``load_image`` returns an (H, W, 3) uint8 RGB
array or raises ImageError, within 5 seconds, and never another exception (a longer run:
``benchmarks/fuzz_images.py``)."""

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
