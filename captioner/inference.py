"""Caption images with a trained model: preprocessing, encoding, search, words."""

import numpy as np

from captioner.data.images import load_image, preprocess_image
from captioner.search import beam_search, greedy_search


def decode_batch(model, images=None, features=None, max_length=None, beam_size=1,
                 **search_options):
    """Captions a batch of preprocessed images (batch, S, S, 3), or of their encoder
    features (batch, H*W, D) when the encoder's output is cached.

    ``beam_size`` 1 is greedy search; more runs ``beam_search`` with ``search_options``
    (n_best, length_penalty, min_length). Returns, per image, the search's list of
    hypotheses (see ``captioner.search``).
    """
    decoder = model.decoder
    if features is None:
        features = model.encode(images)
    memory = decoder.prepare(features)
    state = decoder.initial_state(memory)
    options = dict(batch_size=int(features.shape[0]), start_id=1, end_id=2,
                   max_length=max_length or model.model_config.max_length)
    if beam_size == 1 and not search_options.get("n_best", 1) > 1:
        return greedy_search(decoder.step, state, memory, **options)
    return beam_search(decoder.step, state, memory, beam_size=beam_size, **options,
                       **search_options)


def describe(hypothesis, vocabulary, grid_shape):
    """A hypothesis -> {"caption", "words", "probabilities", "score", "alphas" (n, H, W)}."""
    words = [vocabulary.words[token] for token in hypothesis["tokens"]]
    return {"caption": " ".join(words), "words": words,
            "probabilities": [float(np.exp(value)) for value in hypothesis["log_probs"]],
            "score": hypothesis["score"], "log_prob": hypothesis["log_prob"],
            "finished": hypothesis["finished"],
            "alphas": np.reshape(hypothesis["alphas"], (len(words),) + tuple(grid_shape))}


def caption_files(model, vocabulary, paths, batch_size=16, progress=None, **search_options):
    """Captions image files; yields (path, rgb image, [described hypotheses]) in order.

    Unreadable files raise ImageError before anything is decoded for their batch.
    """
    config = model.model_config.encoder
    for start in range(0, len(paths), batch_size):
        batch_paths = paths[start:start + batch_size]
        rgb = [load_image(path) for path in batch_paths]
        images = np.stack([preprocess_image(image, config.image_size, config.backbone)
                           for image in rgb])  # (batch, S, S, 3)
        for path, image, hypotheses in zip(batch_paths, rgb,
                                           decode_batch(model, images, **search_options)):
            yield path, image, [describe(h, vocabulary, model.grid_shape) for h in hypotheses]
        if progress is not None:
            progress.update(len(batch_paths))
