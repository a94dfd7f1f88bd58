"""Shared fixtures: a tiny synthetic COCO folder and a tiny trained-shape captioner."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """After each test module, JAX drops what it compiled. Every eager op and traced
    function keeps a compiled executable, each holding memory maps of its own; one
    process running every backend test (``.ci/run``'s JAX pass) otherwise reaches the
    kernel's limit of maps (vm.max_map_count, 65,530) and XLA's compiler crashes."""
    yield
    import gc
    import sys
    if "jax" in sys.modules:
        gc.collect()  # the module's models, and the functions they compiled
        sys.modules["jax"].clear_caches()
        gc.collect()


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory):
    """A small synthetic data set in the COCO layout (generated, never downloaded)."""
    from captioner.data.synthetic import generate
    folder = tmp_path_factory.mktemp("synthetic")
    generate(str(folder), seed=3, splits={"train": 24, "val": 6, "test": 6})
    return str(folder)


@pytest.fixture(scope="session")
def vocabulary(synthetic_coco):
    from captioner.data.coco import load_coco_split
    from captioner.data.vocab import Vocabulary
    records, _ = load_coco_split(synthetic_coco, "train")
    return Vocabulary.build(c for r in records for c in r.captions)


def tiny_config(vocabulary, **settings):
    """The tiny preset for ``vocabulary``, with decoder and loss fields set by name."""
    from captioner.config import LOSS_FIELDS, preset
    config = preset("tiny")
    config.vocab_size, config.vocab_hash = len(vocabulary), vocabulary.hash
    config.max_length = 12
    for key, value in settings.items():
        setattr(config.loss if key in LOSS_FIELDS else config.decoder, key, value)
    return config


@pytest.fixture(scope="session")
def tiny_model(vocabulary):
    from captioner.models.captioner import create_captioner
    return create_captioner(tiny_config(vocabulary), seed=7)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
