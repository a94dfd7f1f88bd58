"""Score an annotated split's captions: the field's metrics, grounding, attention.

One code path serves ``captioner evaluate``, the per-epoch validation of training and the
test-split scores written after training: ``ImageCaptioner.evaluate`` captions the records
(``ImageLoader`` reads their images), then

    score_captions(records, captions, instances)  -> scores, notes
    scored(records, captions, seconds, ...)       -> an Evaluation

The scores: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (pycocoevalcap); with instances
annotations also object precision and recall, CHAIR_i and CHAIR_s
(``captioner.metrics.grounding``), the share of each kind of statement that is true of
the boxes (positions, relations, counts, sizes, backgrounds; ``captioner.metrics
.statements``) and attention correctness beside its uniform baseline
(``captioner.metrics.attention``).
"""

import dataclasses
import sys

import numpy as np
from PIL import Image

from captioner.data.images import Unreadable, load_resized, read_batch
from captioner.errors import DataError
from captioner.metrics import ObjectLexicon, attention_correctness, caption_scores, object_grounding
from captioner.metrics.captions import METRICS
from captioner.metrics.diversity import diversity_scores
from captioner.metrics.grounding import head_agreement
from captioner.metrics.statements import statement_scores


@dataclasses.dataclass
class Evaluation:
    results: list     # the COCO results format: [{"image_id", "caption"}], best hypotheses
    scores: dict      # metric -> value, and "images", "ms_per_image", "search"
    notes: dict       # {"tokenizer", "skipped": {what: why}}
    captions: dict    # {image_id: [Caption]} (n-best, with words and maps)


class ImageLoader:
    """The default batch source of ``ImageCaptioner.caption_records``: indices -> {"images": uint8
    (B, S,
    S, 3)}, read with ``load_resized``. An image that cannot be read is given as zeros and
    listed in ``unreadable`` ({index: why}); its record is then left out."""

    def __init__(self, records, image_size):
        self.records, self.image_size, self.unreadable = records, image_size, {}

    def __call__(self, indices):
        images = np.zeros((len(indices), self.image_size, self.image_size, 3), np.uint8)
        read = read_batch(indices, lambda index: load_resized(self.records[index].path,
                                                               self.image_size), "report")
        for row, (index, image) in enumerate(zip(indices, read)):
            if isinstance(image, Unreadable):
                self.unreadable[int(index)] = image.reason
            else:
                images[row] = image
        return {"images": images}


def _image_size(record):
    if record.width and record.height:
        return record.width, record.height
    with Image.open(record.path) as image:
        return image.size


def score_captions(records, captions, instances=None, grid_shape=None, metrics=METRICS,
                   tokenizer="auto", categories=None, training=None):
    """Scores the best caption of each record (see the module docstring).

    Args:
        captions: {image_id: [Caption]} (``ImageCaptioner.caption_records``).
        instances: {image_id: [objects]} (``load_coco_instances``) or None: no grounding.
        grid_shape: (H, W) of the model's attention grid, for attention correctness.
        categories: the grounding head's categories, where the captions carry its
            readings (greedy search of a model with a head): then also how often it
            agrees with the words (``head_agreement``).
        training: the training captions (lists of words), for the share of captions that
            are novel (``captioner.metrics.diversity``).

    Returns:
        (scores, notes): see ``captioner.metrics.caption_scores``.
    """
    best = {record.image_id: captions[record.image_id][0] for record in records}
    references = {record.image_id: record.captions for record in records}
    scores, notes = caption_scores(references, {key: c.caption for key, c in best.items()},
                                   metrics, tokenizer)
    scores.update(diversity_scores([best[record.image_id].words for record in records],
                                   training))
    if instances is not None:
        lexicon = ObjectLexicon.from_instances(instances, getattr(instances, "categories", ()))
        scores.update(object_grounding({key: c.words for key, c in best.items()},
                                       instances, lexicon))
        scenes = getattr(instances, "scenes", {})
        scores.update(statement_scores(
            ((best[r.image_id].words, instances.get(r.image_id, []), _image_size(r),
              scenes.get(r.image_id)) for r in records), lexicon))
        scores.update(attention_correctness(
            ((best[r.image_id].words, best[r.image_id].alphas,
              instances.get(r.image_id, []), _image_size(r)) for r in records),
            lexicon, grid_shape))
        if categories is not None and all(best[r.image_id].readings is not None
                                          for r in records):
            scores.update(head_agreement(
                ((best[r.image_id].words, best[r.image_id].readings[:, 0],
                  instances.get(r.image_id, [])) for r in records), lexicon, categories))
    return scores, notes


def scored(records, captions, seconds, instances=None, grid_shape=None, unreadable=None,
           metrics=None, tokenizer="auto", categories=None, training=None):
    """The :class:`Evaluation` of ``records``' ``captions`` ({image_id: [Caption]}, made in
    ``seconds``): images listed in ``unreadable`` ({record index: why}) are left out of
    the scores and named in notes["unreadable"] ({path: why}); DataError if none could be
    read. The rest as ``score_captions``."""
    unreadable = {records[index].path: why for index, why in sorted((unreadable or {}).items())}
    if unreadable:
        records = [record for record in records if record.image_id in captions]
        if not records:
            raise DataError(f"None of the {len(unreadable)} images can be read, the first: "
                            f"{next(iter(unreadable.values()))}")
    scores, notes = score_captions(records, captions, instances, grid_shape,
                                   metrics or METRICS, tokenizer, categories, training)
    notes["unreadable"] = unreadable
    scores.update(images=len(records), ms_per_image=1000.0 * seconds / max(len(records), 1))
    results = [{"image_id": r.image_id, "caption": captions[r.image_id][0].caption}
               for r in records]
    for what, why in notes["skipped"].items():
        print(f"note: {what} skipped: {why}", file=sys.stderr)
    return Evaluation(results, scores, notes, captions)


SUMMARY = (("BLEU-1", "BLEU-1"), ("BLEU-4", "BLEU-4"), ("BLEU-4 (nltk)", "BLEU-4 (nltk)"),
           ("METEOR", "METEOR"),
           ("ROUGE-L", "ROUGE-L"), ("CIDEr", "CIDEr-D"), ("object_precision", "obj. precision"),
           ("object_recall", "obj. recall"), ("chair_s", "CHAIR_s"),
           ("absent_mispaired", "  mis-paired"), ("absent_wrong_attribute", "  wrong attribute"),
           ("absent_wrong_category", "  wrong category"), ("absent_invented", "  invented"),
           ("true_object", "objects true"), ("true_size", "sizes true"),
           ("true_position", "positions true"), ("true_relation", "relations true"),
           ("true_count", "counts true"), ("true_background", "backgrounds true"),
           ("all_true", "all true"),
           ("head_agreement", "head agrees"), ("head_agreement_absent", "  on absent"),
           ("attention_correctness", "att. correctness"), ("uniform_baseline", "uniform base"),
           ("distinct_1", "distinct-1"), ("distinct_2", "distinct-2"),
           ("vocabulary", "vocabulary used"), ("novel", "novel"),
           ("mean_length", "mean length"), ("repeated_ngrams", "repeated 3-gram"),
           ("ms_per_image", "ms/image"))


def format_scores(scores):
    """The scores as aligned 'name  value' lines for a terminal."""
    lines = []
    for key, label in SUMMARY + tuple((k, k) for k in ("BLEU-2", "BLEU-3", "chair_i")):
        if key not in scores:
            continue
        if key.startswith("true_"):  # a kind of statement: only where captions make some
            made = scores.get("statements_" + key[5:], 0)
            if made:
                lines.append(f"{label:<18} {scores[key]:.4f}  (of {made})")
            continue
        lines.append(f"{label:<18} {scores[key]:.1f}" if key in ("ms_per_image",
                                                                 "vocabulary", "mean_length")
                     else f"{label:<18} {scores[key]:.4f}")
    return "\n".join(lines)
