"""The evaluation report: ``caption.py --coco DIR --split S --html OUT``.

Above the images, the split's scores (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, object
precision and recall, CHAIR and its breakdown by kind of absent mention, the share of each
kind of statement that is true, attention correctness beside uniform attention); then every
image with its caption (n-best where asked), the words that name an object the image does
not hold marked, and the words of each false statement (position, relation, count, size,
background) marked with its kind, its references, its annotated boxes (drawn on
request), its CIDEr-D, and each word's map. The page sorts by CIDEr-D and filters to the
captions with a false claim, from the manifest alone, loading only the data pages it
shows.
"""

import math
import os

from captioner.data.images import load_image
from captioner.metrics.grounding import absent_mentions, absent_words
from captioner.metrics.lexicon import ObjectLexicon
from captioner.metrics.statements import false_words
from captioner.viewer.pages import ViewerWriter, caption_item

SUMMARY = (("BLEU-1", "BLEU-1"), ("BLEU-2", "BLEU-2"), ("BLEU-3", "BLEU-3"),
           ("BLEU-4", "BLEU-4"), ("METEOR", "METEOR"), ("ROUGE-L", "ROUGE-L"),
           ("CIDEr", "CIDEr-D"), ("object_precision", "object precision"),
           ("object_recall", "object recall"), ("chair_i", "CHAIR_i"), ("chair_s", "CHAIR_s"),
           ("absent_mispaired", "mis-paired mentions"),
           ("absent_wrong_attribute", "wrong-attribute mentions"),
           ("absent_wrong_category", "wrong-category mentions"),
           ("absent_invented", "invented mentions"),
           ("true_position", "positions true"), ("true_relation", "relations true"),
           ("true_count", "counts true"), ("true_size", "sizes true"),
           ("true_background", "backgrounds true"), ("all_true", "captions all true"),
           ("attention_correctness", "attention correctness"),
           ("distinct_1", "distinct-1"), ("distinct_2", "distinct-2"),
           ("novel", "novel captions"), ("repeated_ngrams", "repeated trigrams"))
NOTES = {"chair_s": "captions naming an object the image does not hold",
         "absent_mispaired": "share of mentions: category and attribute present, on "
                             "different objects",
         "absent_wrong_attribute": "share of mentions: category present, attribute on no object",
         "absent_wrong_category": "share of mentions: an object has the attributes, not the "
                                  "category",
         "absent_invented": "share of mentions: nothing in the image behind it",
         "all_true": "captions whose every checked statement holds",
         "distinct_1": "distinct words / words, over the split",
         "distinct_2": "distinct bigrams / bigrams, over the split",
         "novel": "captions that are no training caption",
         "repeated_ngrams": "captions that say a trigram twice"}


def summary_rows(scores, notes):
    """[[name, value, note]] of the scores the report shows first."""
    rows = []
    for key, name in SUMMARY:
        if key not in scores or not isinstance(scores[key], float) or math.isnan(scores[key]):
            continue
        note = ""
        if key == "attention_correctness" and "uniform_baseline" in scores:
            note = f"uniform attention: {scores['uniform_baseline']:.3f}"
        note = NOTES.get(key, note)
        if key.startswith("true_"):
            note = f"of {scores.get('statements_' + key[5:], 0)} statements"
        rows.append([name, f"{scores[key]:.3f}", note])
    if "vocabulary" in scores:
        rows.append(["vocabulary used", f"{scores['vocabulary']:.0f}",
                     f"distinct words; {scores.get('mean_length', 0):.1f} words a caption"])
    rows.append(["images", str(scores.get("images", "")), ""])
    for what, why in notes.get("skipped", {}).items():
        rows.append([what, "skipped", why])
    for path, why in notes.get("unreadable", {}).items():
        rows.append(["not read", path, why])
    return rows


def _relative(path, root):
    """``path`` within ``root`` where it is inside, else as it is."""
    path = os.fspath(path)
    if root:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        if not relative.startswith(os.pardir):
            return relative
    return path


def box_label(obj):
    attributes = [str(v) for v in obj.get("attributes", {}).values() if isinstance(v, str)]
    return " ".join(attributes + [obj["category"]])


def write_report(folder, captioner, records, instances, evaluation, title, images=None,
                 overwrite=False, root=None):
    """Writes the report of ``evaluation`` (``ImageCaptioner.evaluate`` of
    ``records``) into ``folder``; ``instances`` may be None (no grounding, no boxes).
    ``images``: the records' RGB images in order (an iterator, so that a caller that also
    draws them reads each file once); by default each is read here. ``overwrite``: as
    ``ViewerWriter`` takes it. ``root``: the data folder; each image is named by its path
    within it (the report tells nothing more of the disk it was made on)."""
    images = iter(images) if images is not None else (load_image(r.path) for r in records)
    lexicon = ObjectLexicon.from_instances(instances, getattr(instances, "categories", ())) \
        if instances is not None else None
    cider = evaluation.notes.get("per_image", {}).get("CIDEr", {})
    with ViewerWriter(folder, "report", title, grid=captioner.grid_shape,
                      summary=summary_rows(evaluation.scores, evaluation.notes),
                      overwrite=overwrite) as html:
        for record, image in zip(records, images):
            objects = instances.get(record.image_id, []) if instances is not None else []
            captions = evaluation.captions[record.image_id]
            absent = set()
            fields = {"cider": round(cider.get(record.image_id, 0.0), 4)}
            item = {"name": _relative(record.path, root),
                    "references": list(record.captions)}
            scene = getattr(instances, "scenes", {}).get(record.image_id)
            size = (record.width, record.height) if record.width and record.height \
                else (int(image.shape[1]), int(image.shape[0]))
            if lexicon is not None:
                fields["absent"] = absent_mentions(captions[0].words, objects, lexicon)
                fields["false"] = len(set(false_words(captions[0].words, objects, size,
                                                      lexicon, scene).values()))
                item["boxes"] = [{"label": box_label(o), "bbox": [float(v) for v in o["bbox"]]}
                                 for o in objects if "bbox" in o]
                item["size"] = [int(image.shape[1]), int(image.shape[0])]
            items = []
            for caption in captions:
                absent, false = ({}, {}) if lexicon is None else (
                    absent_words(caption.words, objects, lexicon),
                    false_words(caption.words, objects, size, lexicon, scene))
                items.append(caption_item(caption, absent, false))
            html.add(image, {**item, "hypotheses": items, "cider": fields["cider"]}, fields)
    return folder
