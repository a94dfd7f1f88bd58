"""Caption an annotated split and score it: the field's metrics, grounding, attention.

One code path serves ``caption.py --coco DIR --split test``, the per-epoch validation of
``train.py`` and the test-split scores written after training:

    caption_records(model, vocabulary, records)  -> {image_id: [described hypotheses]}
    score_captions(records, captions, instances)  -> scores, notes
    evaluate(...)                                 -> both, plus timing, as an Evaluation

The scores: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (pycocoevalcap); with instances
annotations also object precision and recall, CHAIR_i and CHAIR_s
(``captioner.metrics.grounding``) and attention correctness beside its uniform baseline
(``captioner.metrics.attention``).
"""

import dataclasses
import sys
import time

import numpy as np
from PIL import Image

from captioner.data.images import preprocess_files
from captioner.inference import decode_batch, describe
from captioner.metrics import (ObjectLexicon, attention_correctness, caption_scores,
                               object_grounding)
from captioner.metrics.captions import METRICS


@dataclasses.dataclass
class Evaluation:
    results: list     # the COCO results format: [{"image_id", "caption"}], best hypotheses
    scores: dict      # metric -> value, and "images", "ms_per_image", "search"
    notes: dict       # {"tokenizer", "skipped": {what: why}}
    captions: dict    # {image_id: [described hypotheses]} (n-best, with words and alphas)


def image_loader(records, image_size, backbone):
    """A batch source for ``caption_records``: indices -> {"images": (B, S, S, 3)}."""
    def load(indices):
        return {"images": preprocess_files([records[i].path for i in indices], image_size,
                                           backbone)}
    return load


def caption_records(model, vocabulary, records, batch_size=32, batches=None, progress=None,
                    **search_options):
    """Captions ``records``; returns ({image_id: [described hypotheses]}, decoding seconds).

    ``batches(indices)`` gives {"images": ...} or {"features": ...} for those records (by
    default the images are read and preprocessed); ``search_options`` go to
    ``decode_batch`` (beam_size, n_best, length_penalty, min_length, max_length).
    Decoding time counts the encoder and the search, not reading the files.
    """
    encoder = model.model_config.encoder
    batches = batches or image_loader(records, encoder.image_size, encoder.backbone)
    captions, seconds = {}, 0.0
    for start in range(0, len(records), batch_size):
        indices = np.arange(start, min(start + batch_size, len(records)))
        inputs = batches(indices)
        started = time.perf_counter()
        hypotheses = decode_batch(model, vocabulary, **inputs, **search_options)
        seconds += time.perf_counter() - started
        for index, found in zip(indices, hypotheses):
            captions[records[index].image_id] = [describe(h, vocabulary, model) for h in found]
        if progress is not None:
            progress.update(len(indices))
    return captions, seconds


def _image_size(record):
    if record.width and record.height:
        return record.width, record.height
    with Image.open(record.path) as image:
        return image.size


def score_captions(records, captions, instances=None, grid_shape=None, metrics=METRICS,
                   tokenizer="auto"):
    """Scores the best caption of each record (see the module docstring).

    Args:
        captions: {image_id: [described hypotheses]} from ``caption_records``.
        instances: {image_id: [objects]} (``load_coco_instances``) or None: no grounding.
        grid_shape: (H, W) of the model's attention grid, for attention correctness.

    Returns:
        (scores, notes): see ``captioner.metrics.caption_scores``.
    """
    best = {record.image_id: captions[record.image_id][0] for record in records}
    references = {record.image_id: record.captions for record in records}
    scores, notes = caption_scores(references, {key: c["caption"] for key, c in best.items()},
                                   metrics, tokenizer)
    if instances is not None:
        lexicon = ObjectLexicon.from_instances(instances, getattr(instances, "categories", ()))
        scores.update(object_grounding({key: c["words"] for key, c in best.items()},
                                       instances, lexicon))
        scores.update(attention_correctness(
            ((best[r.image_id]["words"], best[r.image_id]["alphas"],
              instances.get(r.image_id, []), _image_size(r)) for r in records),
            lexicon, grid_shape))
    return scores, notes


def evaluate(model, vocabulary, records, instances=None, batch_size=32, batches=None,
             progress=None, metrics=METRICS, tokenizer="auto", **search_options):
    """Captions ``records`` and scores them; returns an :class:`Evaluation`."""
    captions, seconds = caption_records(model, vocabulary, records, batch_size, batches,
                                        progress, **search_options)
    scores, notes = score_captions(records, captions, instances, model.grid_shape, metrics,
                                   tokenizer)
    scores.update(images=len(records), ms_per_image=1000.0 * seconds / max(len(records), 1))
    results = [{"image_id": r.image_id, "caption": captions[r.image_id][0]["caption"]}
               for r in records]
    for what, why in notes["skipped"].items():
        print(f"note: {what} skipped: {why}", file=sys.stderr)
    return Evaluation(results, scores, notes, captions)


SUMMARY = (("BLEU-1", "BLEU-1"), ("BLEU-4", "BLEU-4"), ("BLEU-4 (nltk)", "BLEU-4 (nltk)"),
           ("METEOR", "METEOR"),
           ("ROUGE-L", "ROUGE-L"), ("CIDEr", "CIDEr-D"), ("object_precision", "obj. precision"),
           ("object_recall", "obj. recall"), ("chair_s", "CHAIR_s"),
           ("attention_correctness", "att. correctness"), ("uniform_baseline", "uniform base"),
           ("ms_per_image", "ms/image"))


def format_scores(scores):
    """The scores as aligned 'name  value' lines for a terminal."""
    lines = []
    for key, label in SUMMARY + tuple((k, k) for k in ("BLEU-2", "BLEU-3", "chair_i")):
        if key in scores:
            lines.append(f"{label:<18} {scores[key]:.4f}" if key != "ms_per_image"
                         else f"{label:<18} {scores[key]:.1f}")
    return "\n".join(lines)
