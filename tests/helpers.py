"""Helpers shared by the tests: round trips of layers and models (keras-hub's
``run_layer_test`` in small), and command lines run in-process."""

import weakref

import keras
import numpy as np


def _numpy(outputs):
    """A layer's outputs (a tensor, a tuple or a dict of them) as a flat list of arrays."""
    return [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(outputs)]


def run_layer_test(layer, *inputs, expected_shapes=None, atol=1e-6, **call_kwargs):
    """Checks what every layer of the project must do: ``layer(*inputs)`` gives outputs of
    ``expected_shapes`` (a list, in ``keras.tree.flatten`` order, when given); a clone
    made from ``get_config()`` has the same config and, with the same weights, the same
    outputs; the layer is registered (``keras.saving`` serialises and deserialises it by
    name, as a .keras file with safe_mode does). Returns the outputs."""
    outputs = layer(*inputs, **call_kwargs)
    if expected_shapes is not None:
        assert [tuple(x.shape) for x in _numpy(outputs)] == [tuple(s) for s in expected_shapes]
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(_numpy(clone(*inputs, **call_kwargs)), _numpy(outputs)):
        np.testing.assert_allclose(a, b, atol=atol)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"].startswith("captioner>"), config["registered_name"]
    assert type(keras.saving.deserialize_keras_object(config, safe_mode=True)) is type(layer)
    return outputs


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


class CommandResult:
    """What a command line left: its exit status and its two output streams."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_command(main, *args):
    """Runs a command's ``main`` in this process as ``captioner.cli.run`` does for the real
    command (one-line errors, exit statuses), with its standard output and error captured.
    argparse's refusals (SystemExit) give their status as the process would."""
    import contextlib
    import io

    from captioner.cli import run
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = run(main, [str(arg) for arg in args])
        except SystemExit as leaving:
            code = leaving.code if isinstance(leaving.code, int) \
                else 0 if leaving.code is None else 2
    return CommandResult(code, stdout.getvalue(), stderr.getvalue())


def preprocess_image(rgb, image_size, backbone="small"):
    """The reference preprocessing: an (H, W, 3) uint8 image resized to a square and scaled
    for ``backbone`` (float32 (image_size, image_size, 3)), one image at a time in NumPy."""
    from captioner.data.images import resize_image, scale_pixels
    pixels = resize_image(rgb, image_size).astype(np.float32)
    return np.asarray(scale_pixels(pixels, backbone), dtype=np.float32)


def load_model(folder):
    """The task object of a model folder (``captioner.load_model``)."""
    from captioner.tasks import load
    return load(folder)


def save_model(folder, model, labels, card=None, extra=None):
    """Saves ``model`` as a model folder through its task object: a captioner with its
    vocabulary, a RAM with its class names."""
    from captioner.tasks import ImageCaptioner, RAMClassifier
    task = RAMClassifier(model, labels) if isinstance(labels, (list, tuple)) else \
        ImageCaptioner(model, labels)
    return task.save(folder, card, extra or {})


def search_of(model, vocabulary, max_length=None, beam_size=1, n_best=1, length_penalty=0.0,
              min_length=0, grounded=0.0, statistics=False):
    """The compiled search a captioner's task keeps for these settings
    (``ImageCaptioner.search``); ``grounded`` None: the model's default."""
    from captioner.config import SearchConfig
    from captioner.tasks import ImageCaptioner
    search = SearchConfig(beam=beam_size, n_best=n_best, length_penalty=length_penalty,
                          min_length=min_length, max_length=max_length, grounded=grounded)
    task = _TASKS.get(model)
    if task is None or task.vocabulary is not vocabulary:
        task = _TASKS[model] = ImageCaptioner(model, vocabulary)
    return task.search(search, statistics)


_TASKS = weakref.WeakKeyDictionary()  # model -> its ImageCaptioner, which keeps its searches


def decode_batch(model, vocabulary, images=None, features=None, **options):
    """The search's hypotheses per image (``captioner.search.hypothesis`` dicts) of
    ``images`` or ``features``, through the compiled search of ``search_of(**options)``
    (grounded decoding as the model's default unless given)."""
    options.setdefault("grounded", None)
    search = search_of(model, vocabulary, **options)
    inputs = {"images": images} if features is None else {"features": features}
    return search.hypotheses(search.predict_on_batch(inputs))
