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

Each absent mention (one that matches no object) is also given one of four kinds
(``error_kind``), which say what went wrong:

- ``mispaired``: its category and each attribute it states are in the image, on different
  objects ("a white star" for a black star beside a white circle): a binding error.
- ``wrong_attribute``: its category is in the image, but some attribute it states is on
  no object there ("a red star" where the only star is black and nothing is red).
- ``wrong_category``: its category is not in the image, but one object has every
  attribute it states ("a black star" for a black circle): the right colour, the wrong
  shape. A mention stating no attribute cannot be this kind.
- ``invented``: neither (a category absent from the image, with no object carrying its
  attributes): nothing in the image stands behind it.
"""

from captioner.metrics.lexicon import as_words

ERROR_KINDS = ("mispaired", "wrong_attribute", "wrong_category", "invented")


def object_grounding(captions, instances, lexicon):
    """Grounding figures of ``captions`` {image_id: caption (str or words)}.

    Args:
        instances: {image_id: [{"category", "attributes", ...}]}; an image absent from it
            has no annotated objects.
        lexicon: an ``ObjectLexicon``.

    Returns:
        {"object_precision", "object_recall", "chair_i", "chair_s", "mentions", "objects",
        "captions"}, and per kind of absent mention (``ERROR_KINDS``) "absent_" + kind:
        its share of all mentions (so the four add up to CHAIR_i); precision is 1 and
        CHAIR 0 when nothing is mentioned.
    """
    mentions = correct = objects = named = hallucinating = 0
    kinds = dict.fromkeys(ERROR_KINDS, 0)
    for image_id, caption in captions.items():
        present = instances.get(image_id, [])
        found, good = grounded_mentions(caption, present, lexicon)
        mentions += len(found)
        correct += len(good)
        hallucinating += len(good) < len(found)
        objects += len(present)
        named += sum(any(m.matches(obj) for m in good) for obj in present)
        for kind, count in absent_kinds(caption, present, lexicon).items():
            kinds[kind] += count
    precision = correct / mentions if mentions else 1.0
    return {"object_precision": precision,
            "object_recall": named / objects if objects else 1.0,
            "chair_i": 1.0 - precision,
            "chair_s": hallucinating / len(captions) if captions else 0.0,
            **{f"absent_{kind}": count / mentions if mentions else 0.0
               for kind, count in kinds.items()},
            "mentions": mentions, "objects": objects, "captions": len(captions)}


def error_kind(mention, objects):
    """Which of ``ERROR_KINDS`` an absent ``mention`` (one matching none of ``objects``,
    the image's instances) is; see the module docstring."""
    def carries(obj, name, value):
        return str(obj.get("attributes", {}).get(name, "")).lower() == value
    if any(obj["category"] == mention.category for obj in objects):
        if all(any(carries(obj, name, value) for obj in objects)
               for name, value in mention.attributes):
            return "mispaired"
        return "wrong_attribute"
    if mention.attributes and any(all(carries(obj, name, value)
                                      for name, value in mention.attributes)
                                  for obj in objects):
        return "wrong_category"
    return "invented"


def grounded_mentions(caption, objects, lexicon):
    """(the distinct mentions of ``caption``, those that match one of ``objects``)."""
    found = {(m.category, m.attributes): m for m in lexicon.mentions(as_words(caption))}
    return found, [m for m in found.values() if any(m.matches(obj) for obj in objects)]


def absent_mentions(caption, objects, lexicon):
    """How many distinct objects ``caption`` names that none of ``objects`` is."""
    found, good = grounded_mentions(caption, objects, lexicon)
    return len(found) - len(good)


def absent_kinds(caption, objects, lexicon):
    """{kind: how many distinct mentions of ``caption`` match none of ``objects``} for
    each of ``ERROR_KINDS``."""
    found, good = grounded_mentions(caption, objects, lexicon)
    kinds = dict.fromkeys(ERROR_KINDS, 0)
    for mention in found.values():
        if mention not in good:
            kinds[error_kind(mention, objects)] += 1
    return kinds


def absent_words(caption, objects, lexicon):
    """{position: kind (``ERROR_KINDS``)} of the words of ``caption`` that name an object
    none of ``objects`` is: each such mention's phrase ("circle", "traffic light")."""
    positions = {}
    for mention in lexicon.mentions(as_words(caption)):
        if not any(mention.matches(obj) for obj in objects):
            kind = error_kind(mention, objects)
            positions.update(dict.fromkeys(range(mention.start, mention.end), kind))
    return positions


def head_agreement(samples, lexicon, categories):
    """How often the grounding head's reading of the place a category word looked at is
    the category the word names (``captioner.models.grounding``).

    Args:
        samples: iterable of (words or caption, readings: the head's category label per
            word, objects: the image's instances).
        categories: the head's category names (``GroundingConfig.categories``).

    Returns:
        {"head_agreement": over every mention's head noun, "head_agreement_absent": over
        the mentions of objects the image does not hold (how often the head went along
        with a wrong word), "head_words"}; NaN where there are none.
    """
    agree, absent = [], []
    for words, readings, objects in samples:
        for mention in lexicon.mentions(as_words(words)):
            same = categories[int(readings[mention.end - 1])] == mention.category
            agree.append(same)
            if not any(mention.matches(obj) for obj in objects):
                absent.append(same)
    mean = lambda values: float(sum(values) / len(values)) if values else float("nan")  # noqa: E731
    return {"head_agreement": mean(agree), "head_agreement_absent": mean(absent),
            "head_words": len(agree)}
