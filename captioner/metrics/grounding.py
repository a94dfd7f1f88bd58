"""Object grounding of captions: are the objects named really there, and are they all named?

After Rohrbach et al. 2018 ("Object Hallucination in Image Captioning"). Against the
instance annotations of each image:

- object precision: the share of the captions' object mentions that match an object in
  the image (per caption, each distinct mention counts once). CHAIR_i = 1 - precision.
- object recall: the share of the images' annotated objects that some mention matches.
- CHAIR_s: the share of captions with at least one mention that matches nothing.

A mention matches an object when the categories agree and every attribute the caption
states agrees with the object's annotation ("red circle" needs a red circle; "circle"
takes any circle). Mentions are found by ``ObjectLexicon`` (plurals, synonyms).
"""

from captioner.metrics.lexicon import as_words


def object_grounding(captions, instances, lexicon):
    """Grounding figures of ``captions`` {image_id: caption (str or words)}.

    Args:
        instances: {image_id: [{"category", "attributes", ...}]}; an image absent from it
            has no annotated objects.
        lexicon: an ``ObjectLexicon``.

    Returns:
        {"object_precision", "object_recall", "chair_i", "chair_s", "mentions", "objects",
        "captions"}; precision is 1 and CHAIR 0 when nothing is mentioned.
    """
    mentions = correct = objects = named = hallucinating = 0
    for image_id, caption in captions.items():
        present = instances.get(image_id, [])
        found, good = grounded_mentions(caption, present, lexicon)
        mentions += len(found)
        correct += len(good)
        hallucinating += len(good) < len(found)
        objects += len(present)
        named += sum(any(m.matches(obj) for m in good) for obj in present)
    precision = correct / mentions if mentions else 1.0
    return {"object_precision": precision,
            "object_recall": named / objects if objects else 1.0,
            "chair_i": 1.0 - precision,
            "chair_s": hallucinating / len(captions) if captions else 0.0,
            "mentions": mentions, "objects": objects, "captions": len(captions)}


def grounded_mentions(caption, objects, lexicon):
    """(the distinct mentions of ``caption``, those that match one of ``objects``)."""
    found = {(m.category, m.attributes): m for m in lexicon.mentions(as_words(caption))}
    return found, [m for m in found.values() if any(m.matches(obj) for obj in objects)]


def absent_mentions(caption, objects, lexicon):
    """How many distinct objects ``caption`` names that none of ``objects`` is."""
    found, good = grounded_mentions(caption, objects, lexicon)
    return len(found) - len(good)


def absent_words(caption, objects, lexicon):
    """Positions of the words of ``caption`` that name an object none of ``objects`` is:
    each such mention's phrase ("circle", "traffic light")."""
    positions = []
    for mention in lexicon.mentions(as_words(caption)):
        if not any(mention.matches(obj) for obj in objects):
            positions.extend(range(mention.start, mention.end))
    return positions
