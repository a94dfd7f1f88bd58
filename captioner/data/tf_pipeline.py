"""The training input on tf.data (TensorFlow only; used on every Keras backend).

``fit()`` takes a ``tf.data.Dataset`` on TensorFlow and JAX alike. The dataset follows the
same :class:`~captioner.data.dataset.EpochPlan` as :class:`CaptionBatches`, so both give the
same batches for a seed and an epoch (a test checks it), and adds what Python threads
cannot: images are decoded and resized on tf.data's thread pool
(one call per core; Pillow releases the GIL while it decodes and resizes, and a large
JPEG is decoded at a reduced scale, see ``load_resized``), in order (``deterministic``),
and the next batches are prepared while the step runs (``prefetch``). Images stay uint8
until the model.

tf.data's autotuning is off, with the parallelism and the prefetch set here: its
optimisation thread, started with each iterator, ends only at its next wake-up (up to
10 s later), and ``fit()`` starts a fresh iterator at the end of every epoch and drops it
when it returns, so an epoch could end with a wait of up to 10 s (measured: 7 to 9.5 s on
about half the epochs of a 2,000-image run, against 11 s of training).

Decoding goes through ``load_resized``, the function inference uses, so EXIF rotation,
every Pillow mode and the decompression-bomb guard are the same in both; TensorFlow's own
decoders would skip the EXIF rotation and read fewer formats.

Where TensorFlow is not installed (a JAX-only machine), ``CaptionBatches`` serves alone.
"""

import tensorflow as tf

from captioner.data.dataset import CaptionBatches, reader_threads

PREFETCH = 2  # batches made ahead of the step


class TFCaptionBatches(CaptionBatches):
    """:class:`CaptionBatches` whose ``fit_input()`` is a ``tf.data.Dataset`` of the epoch."""

    def fit_input(self):
        return epoch_dataset(self)


def epoch_dataset(batches):
    """The ``tf.data.Dataset`` of ``batches``' current epoch (``batches.set_epoch``).

    It holds the epoch's plan (a few integers per row); each batch's words, weights and
    attention-supervision targets are made from it when the batch is (the functions the
    Python pipeline calls), so nothing is made for the whole epoch up front."""
    plan, source = batches.plan, batches.images
    size, threads = plan.images.shape[1], reader_threads()
    specs = batches.regions.specs() if batches.regions is not None else []
    keys = [key for key, *_ in specs]

    def words(captions, weights, steps):
        return batches.words(captions, weights, int(steps))

    shapes = [(size, None)] * 3 + [(size,) + ((None,) if timed else ()) + shape
                                   for _, _, shape, timed in specs]
    types = (tf.int32, tf.int32, tf.float32) + tuple(tf.as_dtype(dtype)
                                                     for _, dtype, *_ in specs)

    def make_words(captions, weights, steps):
        made = tf.numpy_function(words, [captions, weights, steps], types, stateful=False)
        for tensor, shape in zip(made, shapes):
            tensor.set_shape(shape)
        return tuple(made)
    text = tf.data.Dataset.from_tensor_slices((plan.captions, plan.weights, plan.steps)).map(
        make_words, num_parallel_calls=threads, deterministic=True)
    if source.input_key == "images":
        def load(index):
            return source.load(int(index))

        def decode(index):
            image, ok = tf.numpy_function(load, [index], (tf.uint8, tf.bool), stateful=False)
            image.set_shape(source.shape)
            ok.set_shape(())
            return image, ok
        inputs = tf.data.Dataset.from_tensor_slices(plan.images.reshape(-1)).map(
            decode, num_parallel_calls=threads, deterministic=True).batch(size)
    else:  # a FeatureCache: one read of B rows of the memory-mapped store per batch
        def read(indices):
            return source.batch(indices)

        def rows(indices):
            features, ok = tf.numpy_function(read, [indices], (tf.float32, tf.bool),
                                             stateful=False)
            features.set_shape((size,) + tuple(source.features.shape[1:]))
            ok.set_shape((size,))
            return features, ok
        inputs = tf.data.Dataset.from_tensor_slices(plan.images).map(
            rows, num_parallel_calls=threads, deterministic=True)

    def assemble(loaded, made):
        (pixels, ok), (tokens, targets, mask, *extra) = loaded, made
        x = {source.input_key: pixels, "tokens": tokens, **dict(zip(keys, extra))}
        return x, targets, mask * tf.cast(ok, tf.float32)[:, None]
    options = tf.data.Options()
    options.autotune.enabled = False  # see the module docstring
    return tf.data.Dataset.zip(inputs, text).map(assemble).prefetch(PREFETCH).with_options(
        options)
