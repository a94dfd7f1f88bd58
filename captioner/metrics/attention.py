"""Attention correctness: how much of a word's attention falls on the object it names.

After Liu et al. 2017 ("Attention Correctness in Neural Image Captioning"), with boxes
instead of segmentation masks. For every generated word that names an object present in
the image (see ``ObjectLexicon``; the head noun of the mention), the attention mass inside
that object's box: sum over grid cells of alpha times the share of the cell the box covers.
When several objects fit the mention, their boxes are united. The uniform-attention
baseline, computed over the same words, is the mean share of the image the boxes cover;
a model that looks where it speaks scores well above it.

The grid maps onto the whole image (captioner resizes without cropping): cell (r, c) of an
(H, W) grid covers x in [c, c + 1] * width / W, y in [r, r + 1] * height / H.
"""

import numpy as np

from captioner.metrics.lexicon import as_words
from captioner.metrics.statements import statements


def box_coverage(boxes, image_size, grid_shape):
    """(H, W) share of each grid cell covered by the union of ``boxes`` ([x, y, w, h]).

    Exact: the plane is cut at every cell and box edge, and each piece is either inside
    a box or not. ``image_size`` is (width, height) of the image the boxes refer to.
    """
    width, height = image_size
    rows, columns = grid_shape
    cell_x = np.linspace(0.0, width, columns + 1)
    cell_y = np.linspace(0.0, height, rows + 1)
    boxes = [(np.clip(x, 0, width), np.clip(y, 0, height),
              np.clip(x + w, 0, width), np.clip(y + h, 0, height)) for x, y, w, h in boxes]
    xs = np.unique(np.concatenate([cell_x] + [[b[0], b[2]] for b in boxes]))
    ys = np.unique(np.concatenate([cell_y] + [[b[1], b[3]] for b in boxes]))
    centre_x, centre_y = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    inside = np.zeros((len(centre_y), len(centre_x)), bool)
    for left, top, right, bottom in boxes:
        inside |= ((centre_y[:, None] > top) & (centre_y[:, None] < bottom)
                   & (centre_x[None, :] > left) & (centre_x[None, :] < right))
    area = np.diff(ys)[:, None] * np.diff(xs)[None, :] * inside  # (pieces_y, pieces_x)
    row_of = np.clip(np.searchsorted(cell_y, centre_y) - 1, 0, rows - 1)
    column_of = np.clip(np.searchsorted(cell_x, centre_x) - 1, 0, columns - 1)
    covered = np.zeros((rows, columns))
    np.add.at(covered, (row_of[:, None], column_of[None, :]), area)
    return covered / ((width / columns) * (height / rows))


def named_objects(words, objects, lexicon, attribute_words=False, statement_words=False):
    """The words that name an object present in the image: [(position of the mention's
    head noun in ``words``, the objects it fits)]; with ``attribute_words`` also each of
    the mention's attribute words ("white" of "white star"), with the same objects; with
    ``statement_words`` also the words of each position phrase, with its object's ("on
    the left" of "a star on the left"), and of each relation phrase, with the objects of
    the mention it relates to ("to the left of" in "a star to the left of a circle" looks
    at the circle, which the relation is judged against; ``captioner.metrics
    .statements``).

    A mention fits the objects of its category whose attributes it matches (any of its
    category where none does). Mentions of absent objects are left out
    (``object_grounding`` counts them). The alignment that attention correctness scores
    and attention supervision (``captioner.data.regions``) trains."""
    found = []
    for mention in lexicon.mentions(as_words(words)):
        chosen = [o for o in objects if mention.matches(o)] or \
                 [o for o in objects if o["category"] == mention.category]
        if chosen:
            if attribute_words:
                found.extend((position, chosen)
                             for position in range(mention.start - mention.lead, mention.start))
            found.append((mention.end - 1, chosen))
    if statement_words:
        for statement in statements(words, lexicon, sizes=False):
            about = {"position": statement.subject, "relation": statement.other}
            mention = about.get(statement.kind)
            chosen = mention is not None and [o for o in objects if mention.matches(o)]
            if chosen:
                found.extend((position, chosen)
                             for position in range(statement.start, statement.end))
    return sorted(found, key=lambda item: item[0])


def attention_correctness(samples, lexicon, grid_shape):
    """Mean attention mass inside the named objects' boxes, and the uniform baseline.

    Args:
        samples: iterable of (words or caption, alphas (n_words, H*W) or (n_words, H, W),
            objects [{"bbox", "category", "attributes"}], (image width, image height)).
        lexicon: an ``ObjectLexicon``; grid_shape: (H, W).

    Returns:
        {"attention_correctness", "uniform_baseline", "ratio", "words"}: means over the
        words that name an object present in their image (NaN figures when there are none).
    """
    masses, baselines = [], []
    for words, alphas, objects, image_size in samples:
        words = as_words(words)
        alphas = np.reshape(np.asarray(alphas, np.float64), (len(words),) + tuple(grid_shape))
        for position, chosen in named_objects(words, objects, lexicon):
            coverage = box_coverage([o["bbox"] for o in chosen], image_size, grid_shape)
            masses.append(float((alphas[position] * coverage).sum()))
            baselines.append(float(coverage.mean()))
    if not masses:
        return {"attention_correctness": float("nan"), "uniform_baseline": float("nan"),
                "ratio": float("nan"), "words": 0}
    mass, baseline = float(np.mean(masses)), float(np.mean(baselines))
    return {"attention_correctness": mass, "uniform_baseline": baseline,
            "ratio": mass / baseline if baseline > 0 else float("nan"), "words": len(masses)}
