"""Export a captioner as a TensorFlow SavedModel or an ONNX model that serves without
this code.

    captioner export --model DIR --out DIR [--format saved_model|onnx]
        [--grounded W]

Run with the TensorFlow backend (both formats are written from TensorFlow graphs). Each
holds the compiled greedy search (``ImageCaptioner.search``: encoder,
decoder and the search loop) and returns, per image, "tokens" (batch, T) word ids (<end>
after a caption), "lengths" (batch,) words before <end>, "probabilities" (batch, T) of
each word, "alphas" (batch, T, H, W) attention maps and "finished" (batch,) bool.
``grounded`` > 0 (by default, as caption.py, 1 for a model with a grounding head) exports
grounded decoding (a model with a grounding head: its object
words re-scored by what the head reads where they looked, ``captioner.models.grounding``).

saved_model: two endpoints, which also return "captions" (batch,) strings:

    serve(images)        uint8 (batch, S, S, 3), the model input (``load_resized``)
    serve_bytes(files)   (batch,) encoded JPEG/PNG/GIF/BMP files, decoded and resized in
                         the graph (tf.io.decode_image, bilinear with antialiasing: close to
                         Pillow's resize, not bit-identical, and without EXIF rotation)

  Load it with ``tf.saved_model.load(DIR)`` and call ``.serve(images)``.

onnx: ``model.onnx`` (Keras' exporter through tf2onnx; the search is an ONNX ``Loop``),
  input "images" uint8 (batch, S, S, 3), the outputs above by name; ONNX has no strings
  here, so a caption is ``vocab.json``'s words of ``tokens[:length]``. Run it with
  ``onnxruntime.InferenceSession(DIR + "/model.onnx").run(None, {"images": images})``.

The folder also holds ``vocab.json`` and ``MODEL_CARD.md`` (the model's card, with a
section on the export). It is written beside its target and renamed into place when
complete.
"""

import os

from captioner.folders import KINDS, claim
from captioner.io import atomic_folder, write_text

FORMATS = ("saved_model", "onnx")
ONNX_FILE = "model.onnx"


def serving_model(search, grid_shape):
    """A Keras model of ``search`` (a CompiledSearch, greedy) with the outputs a server
    returns (see the module docstring), in ``keras.ops``."""
    import keras
    from keras import ops

    class ServedSearch(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.search = search
            self.built = True  # its weights are the captioner's

        def call(self, inputs):
            outputs = self.search(inputs)
            alphas = outputs["alphas"]
            shape = (ops.shape(alphas)[0], ops.shape(alphas)[1], *grid_shape)
            return {"tokens": outputs["words"], "lengths": outputs["lengths"],
                    "probabilities": ops.exp(outputs["log_probs"]),
                    "alphas": ops.reshape(alphas, shape), "finished": outputs["finished"]}

    return ServedSearch(name="served_search")


def export(captioner, out, format="saved_model", grounded=None, overwrite=False):
    """Writes the export folder ``out`` (``format``: one of FORMATS) of an
    ``ImageCaptioner`` (``captioner.tasks``; ``ImageCaptioner.export`` calls this),
    searching with grounded decoding at weight ``grounded`` (0: off; None: as ``caption``
    searches by default, on for a model with a grounding head); returns ``out``, which is
    claimed first (``captioner.folders.claim``: new, empty, an earlier export, or with
    ``overwrite`` any folder, whose other files are kept)."""
    import keras

    from captioner.config import SearchConfig
    from captioner.errors import ConfigError, ModelError
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    out = claim(out, "export", "--out", overwrite)
    if keras.backend.backend() != "tensorflow":
        raise ConfigError("models are exported with the TensorFlow backend "
                          "(KERAS_BACKEND=tensorflow)")
    if getattr(captioner, "kind", None) != "captioner":
        raise ModelError(f"{getattr(captioner, 'folder', '') or 'this model'} holds a "
                         f"{getattr(captioner, 'kind', type(captioner).__name__)}; only "
                         "captioners are exported")
    if grounded is not None and not grounded >= 0.0:
        raise ConfigError(f"--grounded must be >= 0. Received: {grounded}")
    if os.path.exists(out) and os.listdir(out):
        raise ConfigError(f"{out} exists and is not empty; choose another --out")
    served = serving_model(captioner.search(SearchConfig(grounded=grounded)),
                           captioner.grid_shape)
    write = _write_saved_model if format == "saved_model" else _write_onnx
    with atomic_folder(out, owns=KINDS["export"].owns) as temporary:
        description = write(served, captioner, temporary)
        _write_labels(captioner, temporary, description)
        write_text(os.path.join(temporary, KINDS["export"].mark), "")
    return out


def _image_size(captioner):
    return captioner.model.model_config.encoder.image_size


def _write_saved_model(served, saved, folder):
    import keras
    import tensorflow as tf
    size = _image_size(saved)
    words = tf.constant(saved.vocabulary.words)

    def with_captions(outputs):
        said = tf.RaggedTensor.from_tensor(tf.gather(words, outputs["tokens"]),
                                           lengths=outputs["lengths"])
        return {"captions": tf.strings.reduce_join(said, axis=1, separator=" "), **outputs}

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8)])
    def serve(images):
        return with_captions(served({"images": images}))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def serve_bytes(files):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(image, (size, size), antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        images = tf.map_fn(decode, files, fn_output_signature=tf.TensorSpec(
            (size, size, 3), tf.uint8))
        return with_captions(served({"images": images}))

    archive = keras.export.ExportArchive()
    archive.track(served)
    archive.add_endpoint("serve", serve)
    archive.add_endpoint("serve_bytes", serve_bytes)
    archive.write_out(folder, verbose=False)
    return (f"TensorFlow SavedModel: greedy search compiled whole. `serve(images)`: uint8 "
            f"(batch, {size}, {size}, 3); `serve_bytes(files)`: encoded images. Both return "
            "captions, tokens, lengths, word probabilities, attention maps and whether each "
            "caption ended.")


def _write_onnx(served, saved, folder):
    import warnings

    import tensorflow as tf
    size = _image_size(saved)
    with warnings.catch_warnings():  # Keras' tf2onnx patch probes numpy for np.object
        warnings.simplefilter("ignore", FutureWarning)
        served.export(os.path.join(folder, ONNX_FILE), format="onnx", verbose=False,
                      input_signature=[{"images": tf.TensorSpec(
                          (None, size, size, 3), tf.uint8, name="images")}])
    return (f"ONNX (`{ONNX_FILE}`): greedy search compiled whole, an ONNX Loop. Input "
            f"\"images\": uint8 (batch, {size}, {size}, 3); outputs tokens, lengths, word "
            "probabilities, attention maps and whether each caption ended; the caption is "
            "`vocab.json`'s words of `tokens[:length]`.")


def _write_labels(saved, folder, description):
    """The vocabulary and the model card, with a section on the export."""
    from captioner.saving import CARD_FILE, VOCAB_FILE, read_card
    saved.vocabulary.save(os.path.join(folder, VOCAB_FILE))
    model_folder = saved.folder or "a captioner made in memory"
    card = read_card(saved.folder) or ""
    height, width = saved.model.grid_shape
    with open(os.path.join(folder, CARD_FILE), "w", encoding="utf-8") as handle:
        handle.write(card + f"\n## Export\n\nOf `{model_folder}`. {description} Attention "
                     f"maps are {height}x{width}.\n")
