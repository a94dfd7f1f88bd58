"""Run a trained model on images: a captioner captions them, a RAM classifies them.

    decode_batch(model, vocabulary, images | features)   search hypotheses per image
    describe(hypothesis, vocabulary, model)             words, probabilities, alpha grids
    caption_files(model, vocabulary, paths)             (path, image, hypotheses, place)
    classify_files(model, classes, paths)               (path, image, result) per file
                                                        (or an Unreadable, on request)

The public entry is the task object (``captioner.tasks.ImageCaptioner``), which runs these.

Images are files (read with ``load_image``: EXIF rotation, any mode, size guard) or
(H, W, 3) uint8 RGB arrays.
"""

import os

import numpy as np
from keras import ops

from captioner.data.classification import prepare_image
from captioner.data.images import Unreadable, load_image, load_with_input, read_batch, resize_image
from captioner.geometry import location_to_pixels
from captioner.models import replicas
from captioner.search import compiled_search


def decode_batch(model, vocabulary, images=None, features=None, max_length=None,
                 beam_size=1, statistics=False, **search_options):
    """Captions a batch of preprocessed images (batch, S, S, 3), or of their encoder
    features (batch, H*W, D) when the encoder's output is cached.

    ``beam_size`` 1 is greedy search; more is beam search with ``search_options``
    (n_best, length_penalty, min_length). Both run as one graph (``CompiledSearch``):
    compiled whole, or eagerly where training laid the model out across devices
    (``predict_on_batch`` would split or repeat the batch over the replicas). The
    vocabulary gives the <start> and <end> ids.
    Returns, per image, the search's list of hypotheses (see ``captioner.search``); with
    ``statistics`` (hypotheses, (batch, 2 D) ``captioner.domain.feature_statistics`` of
    the annotation vectors decoded from), so that the encoder runs once per batch.
    """
    max_length = max_length or model.model_config.max_length
    search = compiled_search(model, vocabulary, max_length, beam_size, statistics=statistics,
                             **search_options)
    inputs = {"images": images} if features is None else {"features": features}
    outputs = search(inputs) if replicas.laid_out() else search.predict_on_batch(inputs)
    outputs = {key: ops.convert_to_numpy(value) for key, value in outputs.items()}
    hypotheses = search.hypotheses(outputs)
    if not statistics:
        return hypotheses
    return hypotheses, np.concatenate([outputs["feature_mean"].astype(np.float64),
                                       outputs["feature_std"].astype(np.float64)], -1)


def has_heads(model):
    """Whether the model's maps come from layers and heads (a Transformer decoder)."""
    return hasattr(model.decoder, "attention_shape")


def head_maps(model, vocabulary, images, captions):
    """A Transformer's cross-attention of every layer and head for given captions: images
    uint8 (batch, S, S, 3), ``captions`` one list of word ids per image -> per caption
    (n_words, layers, heads, H, W). One teacher-forced pass of <start> and the words: the
    weights the search computed word by word (its "alphas" are their reduction)."""
    longest = max([len(words) for words in captions] + [1])
    tokens = np.zeros((len(captions), longest + 1), "int32")
    tokens[:, 0] = vocabulary.start_id
    for row, words in enumerate(captions):
        tokens[row, 1:len(words) + 1] = words
    maps = ops.convert_to_numpy(model({"images": images, "tokens": tokens})["attention"])
    layers, heads = model.decoder.attention_shape
    return [maps[row, :len(words)].reshape((len(words), layers, heads) + tuple(model.grid_shape))
            for row, words in enumerate(captions)]


def looks_at_one_cell(model):
    """Whether decoding reads one grid cell per word (hard attention, argmax inference)."""
    decoder = model.model_config.decoder
    return decoder.hard and decoder.hard_inference == "argmax"


def describe(hypothesis, vocabulary, model):
    """A hypothesis -> {"caption", "words", "probabilities", "score", "log_prob",
    "finished", "alphas" (n_words, H, W), "cells"}: "cells" is the flat grid cell each
    word read when the model looks at one cell (hard attention), else None; and where the
    search gave them, "readings" (n_words, groups), the grounding head's labels."""
    words = [vocabulary.words[token] for token in hypothesis["tokens"]]
    alphas = np.reshape(hypothesis["alphas"], (len(words),) + tuple(model.grid_shape))
    cells = alphas.reshape(len(words), alphas[0].size if len(words) else 1).argmax(-1) if looks_at_one_cell(model) else None
    described = {"caption": " ".join(words), "words": words,
                 "probabilities": [float(np.exp(value)) for value in hypothesis["log_probs"]],
                 "score": hypothesis["score"], "log_prob": hypothesis["log_prob"],
                 "finished": hypothesis["finished"], "alphas": alphas, "cells": cells}
    if "readings" in hypothesis:  # the grounding head's labels of each word's place
        described["readings"] = hypothesis["readings"]
    return described


def _read(image):
    """A file path -> its RGB array; an array -> itself, checked."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError("An image array must be (height, width, 3) uint8 RGB. Received: "
                         f"shape {array.shape}, dtype {array.dtype}")
    return array


def _read_with_input(image, image_size):
    """A file path or an RGB array -> (the RGB array, its model input, uint8 (S, S, 3)),
    the input exactly as training saw it (``load_resized``)."""
    if isinstance(image, (str, os.PathLike)):
        return load_with_input(image, image_size)
    array = _read(image)
    return array, resize_image(array, image_size)


def _in_order(read, answers):
    """The batch's results in input order: each Unreadable where it was, the readable
    inputs' ``answers`` (an iterator, in order) between them."""
    answers = iter(answers)
    return [item if isinstance(item, Unreadable) else next(answers) for item in read]


def caption_files(model, vocabulary, paths, batch_size=16, progress=None, domain=None,
                  unreadable="raise", heads=False, **search_options):
    """Captions images (files or RGB arrays); yields (path, rgb image, [described
    hypotheses], place) in order: ``place`` is None, or with a ``domain`` (a
    ``captioner.domain.Domain``) {"distance", "out_of_domain"}. An unreadable file raises
    its ImageError before anything is decoded for its batch, or with
    ``unreadable="report"`` is yielded as an :class:`Unreadable` in its place while every
    readable image is captioned. ``heads``: a Transformer's hypotheses also get "heads",
    every layer's and head's maps (``head_maps``: one more pass of the model)."""
    config = model.model_config.encoder
    for start in range(0, len(paths), batch_size):
        batch_paths = paths[start:start + batch_size]
        read = read_batch(batch_paths, lambda path: (path, *_read_with_input(
            path, config.image_size)), unreadable)
        good = [item for item in read if not isinstance(item, Unreadable)]
        answers = []
        if good:
            images = np.stack([inputs for _, _, inputs in good])  # uint8 (batch, S, S, 3)
            # encoded once: the compiled search returns the statistics of the features it
            # decoded from, for the domain check
            found, statistics = decode_batch(model, vocabulary, images, statistics=True,
                                             **search_options)
            places = domain.flags(statistics) if domain is not None else [None] * len(images)
            described = [[describe(h, vocabulary, model) for h in hypotheses]
                         for hypotheses in found]
            if heads and has_heads(model):
                rows = [(image, h) for image, hypotheses in enumerate(found) for h in hypotheses]
                maps = iter(head_maps(model, vocabulary, images[[image for image, _ in rows]],
                                      [h["tokens"] for _, h in rows]))
                for hypotheses in described:
                    for hypothesis in hypotheses:
                        hypothesis["heads"] = next(maps)
            answers = [(path, image, hypotheses, place) for (path, image, _), hypotheses, place
                       in zip(good, described, places)]
        yield from _in_order(read, answers)
        if progress is not None:
            progress.update(len(batch_paths))


def classify_files(model, classes, paths, batch_size=16, unreadable="raise"):
    """A RAM's answer per image (file or RGB array); yields (path, the image as the model
    saw it (H, W, C) in [0, 1], result) with result {"label", "probability",
    "probabilities" (classes,), "locations" (N, 2) in [-1, 1], "glimpses" [(row, column)
    pixel centres], "patches" (N, k, g, g, C)}. ``unreadable``: as ``caption_files``."""
    config = model.model_config
    for start in range(0, len(paths), batch_size):
        read = read_batch(paths[start:start + batch_size], lambda path: (path, prepare_image(
            _read(path), config.height, config.width, config.channels)), unreadable)
        good = [item for item in read if not isinstance(item, Unreadable)]
        answers = []
        if good:
            images = np.stack([image for _, image in good])
            outputs = model.predict_on_batch(images)
            probabilities = ops.convert_to_numpy(ops.softmax(outputs["logits"], axis=-1))
            locations = ops.convert_to_numpy(outputs["locations"])
            patches = ops.convert_to_numpy(outputs["patches"])
            for row, (path, image) in enumerate(good):
                best = int(probabilities[row].argmax())
                answers.append((path, image, {
                    "label": classes[best], "probability": float(probabilities[row, best]),
                    "probabilities": probabilities[row], "locations": locations[row],
                    "glimpses": [tuple(float(v) for v in point) for point in location_to_pixels(
                        locations[row], config.height, config.width)],
                    "patches": patches[row]}))
        yield from _in_order(read, answers)
