"""Export a captioner as a TensorFlow SavedModel or an ONNX model that serves without
this code, with the search ``captioner caption`` would run.

    captioner export --model DIR [--model DIR...] --out DIR [--format saved_model|onnx|litert]
        [search options: --beam K --n-best N --samples N --top-p P ... as caption's]

Run with the TensorFlow backend (both formats are written from TensorFlow graphs). Each
holds the compiled search (``ImageCaptioner.search``: encoder, decoder and the search
loop, greedy by default; beam, diverse beam or sampling as the options say, with their
controls) and ranks each image's captions in the graph (``Sampler.ranked``), so that it
returns ``captioner caption``'s captions. Per image: "tokens" (batch, T) word ids (<end>
or 0 after a caption), "lengths" (batch,) words before <end>, "probabilities" (batch, T)
of each word, "alphas" (batch, T, H, W) attention maps, "scores" (batch,) what the
ranking used and "finished" (batch,) bool; a search with N captions per image (n-best,
samples) returns them best first, (batch, N, ...) each, a score of -inf marking a place
with no caption. A search that samples takes a "seed" (batch,) uint32 input, one per image
(``caption --seed S`` is a seed of S for every image). ``--grounded W`` exports grounded
decoding (by default, as ``caption``, on for a model with a grounding head).

saved_model: two endpoints, which also return "captions" (batch[, N]) strings:

    serve(images[, seed])       uint8 (batch, S, S, 3), the model input (``load_resized``)
    serve_bytes(files[, seed])  (batch,) encoded JPEG/PNG/GIF/BMP files, decoded and
                                resized in the graph (tf.io.decode_image, bilinear with
                                antialiasing: close to Pillow's resize, not bit-identical,
                                and without EXIF rotation)

  Load it with ``tf.saved_model.load(DIR)`` and call ``.serve(images)``.

onnx: ``model.onnx`` (Keras' exporter through tf2onnx, each select as ONNX ``Where``; the
  search is an ONNX ``Loop``; opset 18 for sampling, whose noise hashes with bitwise XOR),
  every search, input "images" uint8 (batch, S, S, 3) (and "seed"), the outputs above by
  name; ONNX has no strings here, so a caption is ``vocab.json``'s words of
  ``tokens[:length]``. Run it with ``onnxruntime.InferenceSession(DIR +
  "/model.onnx").run(None, {"images": images})``.

litert: ``model.tflite`` (Keras' LiteRT exporter), greedy and beam search, one image
  per call (sampling's uint32 bitwise noise has no LiteRT kernel: for it an
  ``ExportWarning`` says so and the file carries greedy search with the same controls):
  ``Interpreter(model_path).get_signature_runner()(images=image[None])`` returns the
  outputs above by name.

The folder also holds ``vocab.json`` and ``MODEL_CARD.md`` (the model's card, with a
section on the export naming the search). It is written beside its target and renamed
into place when complete.
"""

import contextlib
import dataclasses
import os
import warnings

from captioner.folders import KINDS, claim
from captioner.io import atomic_folder, write_text

FORMATS = ("saved_model", "onnx", "litert")
ONNX_FILE = "model.onnx"
LITERT_FILE = "model.tflite"


def serving_model(search, grid_shape):
    """A Keras model of ``search`` (a CompiledSearch) with the outputs a server returns
    (see the module docstring), in ``keras.ops``: each image's captions ranked in the graph
    (``Sampler.ranked``), (batch, N, ...) for N captions per image, (batch, ...) for one."""
    import keras
    from keras import ops

    from captioner.search.sampler import scored

    class ServedSearch(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.search = search
            self.built = True  # its weights are the captioner's

        def call(self, inputs):
            found = search.sampler.ranked(self.search(inputs))
            alphas = found["alphas"]
            shape = (ops.shape(alphas)[0], ops.shape(alphas)[1], ops.shape(alphas)[2],
                     *grid_shape)
            scores = found["scores"]
            # -inf where no caption, computed (log 0) rather than a constant: LiteRT's
            # converter writes a constant -inf as the lowest float
            scores = scores + ops.log(ops.cast(scored(scores), scores.dtype))
            served = {"tokens": found["tokens"], "lengths": found["lengths"],
                      "probabilities": ops.exp(found["log_probs"]),
                      "alphas": ops.reshape(alphas, shape), "finished": found["finished"],
                      "scores": scores}
            if captions_of(search) == 1:
                served = {key: value[:, 0] for key, value in served.items()}
            return served

    return ServedSearch(name="served_search")


def captions_of(search):
    """How many captions a CompiledSearch gives an image."""
    return getattr(search.sampler, "n_best", search.sampler.width)


def export(captioner, out, format="saved_model", grounded=None, overwrite=False, search=None):
    """Writes the export folder ``out`` (``format``: one of FORMATS) of an
    ``ImageCaptioner`` (``captioner.tasks``; ``ImageCaptioner.export`` calls this),
    searching as ``search`` (a ``SearchConfig``, by default greedy) with grounded decoding
    at weight ``grounded`` where given (0: off; None: the search's, by default as
    ``caption`` searches, on for a model with a grounding head); returns ``out``, which is
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
    if grounded is not None or search is None:
        search = dataclasses.replace(search or SearchConfig(), grounded=grounded)
    config = captioner.search_config(search)
    if format == "litert":
        search, config = _litert_search(captioner, search, config)
    compiled = captioner.search(search)
    served = serving_model(compiled, captioner.grid_shape)
    write = {"saved_model": _write_saved_model, "onnx": _write_onnx,
             "litert": _write_litert}[format]
    with atomic_folder(out, owns=KINDS["export"].owns) as temporary:
        description = write(served, captioner, temporary, compiled.draws,
                            describe(config, captions_of(compiled)))
        _write_labels(captioner, temporary, description)
        write_text(os.path.join(temporary, KINDS["export"].mark), "")
    return out


class ExportWarning(UserWarning):
    """The export carries another search than the one asked for (``captioner export``
    prints it as a line)."""


def _litert_search(captioner, search, config):
    """The search a LiteRT export can carry: ``search`` (and its resolved ``config``), or
    greedy search with the same controls where LiteRT cannot run it, with an
    ``ExportWarning`` that says why."""
    if config.sampling:
        why = ("sampling's noise hashes with uint32 bitwise operations, which have no "
               "LiteRT kernel")
    else:
        return search, config
    warnings.warn(f"{why}: model.tflite carries greedy search (export the search asked for "
                  "as --format saved_model or onnx)", ExportWarning, stacklevel=3)
    plain = type(search)()  # greedy: the defaults of every beam and sampling option
    search = dataclasses.replace(search, **{name: getattr(plain, name) for name in (
        "beam", "n_best", "beam_groups", "samples", "temperature", "top_k", "top_p")})
    return search, captioner.search_config(search)


def _image_size(captioner):
    return captioner.model.model_config.encoder.image_size


def describe(search, captions):
    """The exported search in words, for the model card."""
    if search.sampling:
        what = (f"{search.samples} caption(s) per image drawn (temperature "
                f"{search.temperature:g}, top-k {search.top_k}, top-p {search.top_p:g}), best "
                "first, from a `seed` (batch,) uint32 input")
    elif search.beam > 1:
        diverse = (f" in {search.beam_groups} groups (diversity {search.diversity:g})"
                   if search.beam_groups > 1 else "")
        what = f"beam search of {search.beam}{diverse}, the {captions} best caption(s)"
    else:
        what = "greedy search"
    controls = [f"{name} {value}" for name, value in (
        ("length penalty", search.length_penalty), ("minimum length", search.min_length),
        ("no repeated n-gram of", search.no_repeat_ngram),
        ("repetition penalty", search.repetition_penalty != 1.0 and search.repetition_penalty),
        ("grounded decoding at", search.grounded)) if value]
    if search.ban:
        controls.append("banned " + ", ".join(search.ban))
    return what + (f"; {'; '.join(controls)}" if controls else "")


def _write_saved_model(served, saved, folder, draws, search):
    import keras
    import tensorflow as tf
    size = _image_size(saved)
    words = tf.constant(saved.vocabulary.words)

    def with_captions(outputs):
        tokens, lengths = outputs["tokens"], outputs["lengths"]
        flat = tf.reshape(tokens, (-1, tf.shape(tokens)[-1]))
        said = tf.RaggedTensor.from_tensor(tf.gather(words, flat),
                                           lengths=tf.reshape(lengths, (-1,)))
        captions = tf.reshape(tf.strings.reduce_join(said, axis=1, separator=" "),
                              tf.shape(lengths))
        return {"captions": captions, **outputs}

    def inputs(images, seed):
        return {"images": images, "seed": seed} if draws else {"images": images}

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(image, (size, size), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    image_spec = tf.TensorSpec((None, size, size, 3), tf.uint8)
    seed_spec = [tf.TensorSpec((None,), tf.uint32)] if draws else []

    @tf.function(input_signature=[image_spec] + seed_spec)
    def serve(images, seed=None):
        return with_captions(served(inputs(images, seed)))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)] + seed_spec)
    def serve_bytes(files, seed=None):
        images = tf.map_fn(decode, files, fn_output_signature=tf.TensorSpec(
            (size, size, 3), tf.uint8))
        return with_captions(served(inputs(images, seed)))

    archive = keras.export.ExportArchive()
    archive.track(served)
    archive.add_endpoint("serve", serve)
    archive.add_endpoint("serve_bytes", serve_bytes)
    archive.write_out(folder, verbose=False)
    seeded = ", seed" if draws else ""
    return (f"TensorFlow SavedModel: {search}, compiled whole. `serve(images{seeded})`: uint8 "
            f"(batch, {size}, {size}, 3); `serve_bytes(files{seeded})`: encoded images. Both "
            "return captions, tokens, lengths, word probabilities, attention maps, scores and "
            "whether each caption ended.")


def _keras_export(served, path, format, signature, **options):
    """``served.export`` (Keras' exporter) of one file, its converters' warnings hushed
    (Keras' tf2onnx patch probes numpy for np.object; the LiteRT converter's notes)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served.export(path, format=format, verbose=False, input_signature=[signature],
                      **options)


@contextlib.contextmanager
def _selects_as_where():
    """tf2onnx writes a float ``tf.where`` as cond * x + (1 - cond) * y unless it sees an
    infinite constant; a search's scores are -inf where there is no hypothesis, and
    0 * -inf is NaN. Within this block, Keras' ONNX exporter converts every select to ONNX
    ``Where`` (tf2onnx's own conversion of it, through its ``custom_op_handlers``)."""
    import tf2onnx
    from tf2onnx.onnx_opset.controlflow import Select

    def where(ctx, node, name, args):
        node.set_attr("handles_nan", True)  # the flag tf2onnx's rewriters set for this
        Select.version_9(ctx, node)

    convert = tf2onnx.convert.from_function

    def from_function(*args, **kwargs):
        handlers = {"Select": (where, []), "SelectV2": (where, []),
                    **(kwargs.pop("custom_op_handlers", None) or {})}
        return convert(*args, custom_op_handlers=handlers, **kwargs)
    tf2onnx.convert.from_function = from_function
    try:
        yield
    finally:
        tf2onnx.convert.from_function = convert


def _write_onnx(served, saved, folder, draws, search):
    import tensorflow as tf
    size = _image_size(saved)
    signature = {"images": tf.TensorSpec((None, size, size, 3), tf.uint8, name="images")}
    if draws:
        signature["seed"] = tf.TensorSpec((None,), tf.uint32, name="seed")
    # opset 18 where the search draws: its noise hashes with bitwise XOR
    with _selects_as_where():
        _keras_export(served, os.path.join(folder, ONNX_FILE), "onnx", signature,
                      opset_version=18 if draws else None)
    seeded = ' and "seed": uint32 (batch,)' if draws else ""
    return (f"ONNX (`{ONNX_FILE}`): {search}, compiled whole, an ONNX Loop. Input "
            f"\"images\": uint8 (batch, {size}, {size}, 3){seeded}; outputs tokens, lengths, "
            "word probabilities, attention maps, scores and whether each caption ended; a "
            "caption is `vocab.json`'s words of `tokens[:length]`.")


def _write_litert(served, saved, folder, draws, search):
    import tensorflow as tf
    size = _image_size(saved)
    _keras_export(served, os.path.join(folder, LITERT_FILE), "litert",
                  {"images": tf.TensorSpec((1, size, size, 3), tf.uint8, name="images")})
    return (f"LiteRT (`{LITERT_FILE}`): {search}, compiled whole, one image per call. Its "
            f"signature takes \"images\": uint8 (1, {size}, {size}, 3) and returns tokens, "
            "lengths, word probabilities, attention maps, scores and whether each caption "
            "ended; a caption is `vocab.json`'s words of `tokens[:length]`.")


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
