"""Caption images with a trained model: preprocessing, encoding, search, words."""

import numpy as np

from captioner.data.images import load_image, preprocess_image
from captioner.search import greedy_search


def decode_batch(model, images, max_length=None, search=greedy_search, **search_options):
    """Runs ``search`` over a batch of preprocessed images (batch, S, S, 3).

    Returns, per image, the search's list of hypotheses (see ``captioner.search``).
    """
    decoder = model.decoder
    memory = decoder.prepare(model.encode(images))
    state = decoder.initial_state(memory)

    def step(tokens, state):
        return decoder.step(tokens, state, memory)

    return search(step, state, batch_size=len(images), start_id=1, end_id=2,
                  max_length=max_length or model.model_config.max_length, **search_options)


def describe(hypothesis, vocabulary, grid_shape):
    """A hypothesis -> {"caption", "words", "probabilities", "score", "alphas" (n, H, W)}."""
    words = [vocabulary.words[token] for token in hypothesis["tokens"]]
    return {"caption": " ".join(words), "words": words,
            "probabilities": [float(np.exp(value)) for value in hypothesis["log_probs"]],
            "score": hypothesis["score"],
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
