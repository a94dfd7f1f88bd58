"""Round-trip helpers shared by the model tests."""

import numpy as np

import keras


def assert_round_trip(model, inputs, tmp_path, name="model.keras"):
    """Saves ``model`` as .keras, loads it with safe_mode on, and checks equal outputs."""
    path = str(tmp_path / name)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    expected, actual = model(inputs), loaded(inputs)
    for key in expected:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(actual[key]),
                                   keras.ops.convert_to_numpy(expected[key]), rtol=0, atol=1e-6)
    return loaded
