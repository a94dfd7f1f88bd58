"""Export a captioner as a TensorFlow SavedModel that serves without this code.

    python -m captioner.export --model DIR --out DIR [--format saved_model]

The SavedModel (TensorFlow only: run with the TensorFlow backend) holds the compiled
greedy search (``captioner.models.decoding.CompiledSearch``) and the vocabulary, and has
two endpoints, each returning {"captions" (batch,) strings, "tokens" (batch, T) word ids
(<end> after a caption), "lengths" (batch,), "probabilities" (batch, T) of each word,
"alphas" (batch, T, H, W) attention maps, "finished" (batch,) bool}:

    serve(images)        uint8 (batch, S, S, 3), the model input (``load_resized``)
    serve_bytes(files)   (batch,) encoded JPEG/PNG/GIF/BMP files, decoded and resized in
                         the graph (tf.io.decode_image, bilinear with antialiasing: close to
                         Pillow's resize, not bit-identical, and without EXIF rotation)

Load it with ``tf.saved_model.load(DIR)`` and call ``.serve(images)``. The folder also
holds ``vocab.json`` and ``MODEL_CARD.md`` (the model's card, with a section on the
export). The folder is written beside its target and renamed into place when complete.
"""

import os
import shutil
import sys
import tempfile

from captioner.cli import ArgumentParser, import_keras_quietly, run

FORMATS = ("saved_model",)  # ONNX: see export_saved_model's docstring


def export_saved_model(model_folder, out):
    """Writes the SavedModel folder ``out`` for the captioner in ``model_folder``.

    ONNX is not offered: tf2onnx and onnxruntime are not among the pinned requirements,
    and the search's ``while_loop`` with a data-dependent stop would export as an ONNX
    Loop that has not been checked here.
    """
    import keras
    from captioner.errors import ConfigError, ModelError
    if keras.backend.backend() != "tensorflow":
        raise ConfigError("a SavedModel is exported with the TensorFlow backend "
                          "(KERAS_BACKEND=tensorflow)")
    import tensorflow as tf

    from captioner.models.decoding import compiled_search
    from captioner.saving import CARD_FILE, VOCAB_FILE, load_model
    saved = load_model(model_folder)
    if saved.kind != "captioner":
        raise ModelError(f"{model_folder} holds a {saved.kind}; only captioners are exported")
    if os.path.exists(out) and os.listdir(out):
        raise ConfigError(f"{out} exists and is not empty; choose another --out")
    model, vocabulary = saved.model, saved.vocabulary
    size = model.model_config.encoder.image_size
    height, width = model.grid_shape
    search = compiled_search(model, vocabulary, model.model_config.max_length)
    words = tf.constant(vocabulary.words)

    def described(outputs):
        tokens, lengths = outputs["words"], outputs["lengths"]
        said = tf.RaggedTensor.from_tensor(tf.gather(words, tokens), lengths=lengths)
        alphas = outputs["alphas"]
        return {"captions": tf.strings.reduce_join(said, axis=1, separator=" "),
                "tokens": tokens, "lengths": lengths,
                "probabilities": tf.exp(outputs["log_probs"]),
                "alphas": tf.reshape(alphas, (tf.shape(alphas)[0], tf.shape(alphas)[1],
                                              height, width)),
                "finished": outputs["finished"]}

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8)])
    def serve(images):
        return described(search({"images": images}))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def serve_bytes(files):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(image, (size, size), antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        images = tf.map_fn(decode, files, fn_output_signature=tf.TensorSpec(
            (size, size, 3), tf.uint8))
        return described(search({"images": images}))

    archive = keras.export.ExportArchive()
    archive.track(search)
    archive.add_endpoint("serve", serve)
    archive.add_endpoint("serve_bytes", serve_bytes)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".partial-", dir=parent)
    try:
        archive.write_out(temporary, verbose=False)
        vocabulary.save(os.path.join(temporary, VOCAB_FILE))
        card_path = os.path.join(model_folder, CARD_FILE)
        card = ""
        if os.path.isfile(card_path):
            with open(card_path, encoding="utf-8") as handle:
                card = handle.read()
        with open(os.path.join(temporary, CARD_FILE), "w", encoding="utf-8") as handle:
            handle.write(card + f"\n## Export\n\nTensorFlow SavedModel of `{model_folder}`: "
                         f"greedy search compiled whole. `serve(images)`: uint8 (batch, "
                         f"{size}, {size}, 3); `serve_bytes(files)`: encoded images. Both "
                         "return captions, tokens, lengths, word probabilities, attention "
                         f"maps ({height}x{width}) and whether each caption ended.\n")
        if os.path.isdir(out):
            os.rmdir(out)  # empty, checked above
        os.replace(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


def main(argv=None):
    parser = ArgumentParser(prog="python -m captioner.export",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the captioner's model folder")
    parser.add_argument("--out", required=True, help="the export folder to write")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    args = parser.parse_args(argv)
    import_keras_quietly()
    export_saved_model(args.model, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run(main))
