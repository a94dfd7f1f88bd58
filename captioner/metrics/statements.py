"""What a caption says beyond the objects it names, checked against its image's boxes.

A caption is a set of claims. ``statements`` finds them in a caption's words, each of one
kind (``KINDS``):

- ``object``: a named object is there (its category, and every attribute stated other
  than size: "a red star" needs a red star).
- ``size``: it has the size stated ("a large red square"), where the data records sizes
  (an instance attribute "size").
- ``position``: where it is, by the image's thirds of its box centre: "on the left", "at
  the top", "at the bottom right", "in the top left corner", "in the middle", "in the
  center" (middle alone: both axes; "top middle": middle across).
- ``relation``: how two named objects lie to each other: "A to the left of B", "to the
  right of", "on the left of", "above", "over", "on top of", "below", "under",
  "beneath"; judged by ``rule`` (``RELATION_RULES``) between box centres or boxes.
- ``count``: how many there are of a kind: a number word before a mention or a generic
  noun ("two red stars", "three shapes", "a single star"), "N other shapes" (beyond those
  named before), and naming the same description again ("a blue star and a blue star"
  claims at least two).
- ``background``: the word before "background" ("on a striped background"), where the
  data records the image's background (``scene["background"]``, the synthetic sets').

Each statement is true when some objects of the image that its mentions fit make it true
(a mention fits an object as ``Mention.matches``, size aside). Only what the data can
decide is checked: a relation whose second object is not a known category ("above the
clouds"), or a size or background the data does not record, is no statement. The
relation and count checks need nothing but categories and boxes, so they run on COCO's
instances as they are.

    checked = check_caption(words, objects, (width, height), lexicon, scene)
    scores = statement_scores(samples, lexicon)   # per kind the share true
"""

import dataclasses
import math

from captioner.metrics.lexicon import as_words

KINDS = ("object", "size", "position", "relation", "count", "background")
RELATION_RULES = ("dominant", "centre", "disjoint")
NUMBERS = {"no": 0, "zero": 0, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4,
           "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
GENERIC = {"shape", "shapes", "object", "objects", "thing", "things", "item", "items"}
HORIZONTAL = {"left": "left", "right": "right"}
VERTICAL = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
MIDDLE = {"middle", "center", "centre"}
PLACE_NOUNS = {"corner", "side", "part", "half", "edge"}
FRAME = {"image", "picture", "photo", "frame", "scene", "photograph"}
RELATION_WORDS = {"above": "above", "over": "above", "below": "below", "under": "below",
                  "beneath": "below", "underneath": "below"}
SIZE = "size"
ARTICLES = {"a", "an", "the", "on", "against", "in", "with", "and", ","}


@dataclasses.dataclass(frozen=True)
class Statement:
    """One claim: ``kind`` (``KINDS``), the words [start, end) that make it, what it
    claims (``claim``: a count, ("top", "left"), "left", "large", "striped" ...), the
    mention it is about (``subject``) and, for a relation, the other (``other``)."""
    kind: str
    start: int
    end: int
    claim: object
    subject: object = None
    other: object = None
    exact: bool = True    # a count: exactly (a number word) or at least (a repetition)
    before: int = 0       # "N other ...": how many of the kind were named before


def _fits(mention, obj, size=False):
    """Whether ``mention`` names ``obj``; its size only if ``size``."""
    if obj["category"] != mention.category:
        return False
    known = obj.get("attributes", {})
    return all(str(known.get(name, "")).lower() == value for name, value in mention.attributes
               if size or name != SIZE)


@dataclasses.dataclass(frozen=True)
class _Any:
    """A stand-in mention for a generic noun ("three red shapes"): any category."""
    category: object = None
    attributes: tuple = ()


def _matching(mention, objects, size=True):
    if isinstance(mention, _Any):
        return [o for o in objects if all(str(o.get("attributes", {}).get(name, "")).lower()
                                          == value for name, value in mention.attributes)]
    return [o for o in objects if _fits(mention, o, size)]


def _before_mention(index, mentions):
    """The last mention that ends at or before word ``index``, or None."""
    found = [m for m in mentions if m.end <= index]
    return found[-1] if found else None


def _after_mention(index, mentions):
    found = [m for m in mentions if m.start - m.lead >= index]
    return found[0] if found else None


def _region(words, start):
    """(end, (horizontal, vertical)) of the region words from ``start`` ("top left",
    "middle", "bottom right corner"), or None if there are none."""
    horizontal = vertical = None
    middle, end = False, start
    while end < len(words) and (words[end] in HORIZONTAL or words[end] in VERTICAL
                                or words[end] in MIDDLE):
        word = words[end]
        if word in HORIZONTAL:
            horizontal = HORIZONTAL[word]
        elif word in VERTICAL:
            vertical = VERTICAL[word]
        else:
            middle = True
        end += 1
    if end == start:
        return None
    if middle:  # "in the middle": both axes; "top middle": the other one
        horizontal = horizontal or ("middle" if vertical or not horizontal else None)
        vertical = vertical or ("middle" if not horizontal or horizontal == "middle" else None)
    while end < len(words) and words[end] in PLACE_NOUNS:
        end += 1
    return end, (horizontal, vertical)


def statements(caption, lexicon, sizes=True):
    """The statements of ``caption`` (text or words), left to right by kind (see the
    module docstring); ``sizes``: whether size words are claims (the data records sizes).
    The background is found whatever the data records; ``check`` decides."""
    words = as_words(caption)
    mentions = lexicon.mentions(words)
    found = []
    for mention in mentions:
        found.append(Statement("object", mention.start - mention.lead, mention.end,
                               mention.category, mention))
        size = dict(mention.attributes).get(SIZE)
        if sizes and size is not None:
            found.append(Statement("size", mention.start - mention.lead, mention.end, size,
                                   mention))
    found += _counts(words, mentions, lexicon)
    index = 0
    while index < len(words):
        word, made = words[index], None
        if word in RELATION_WORDS or words[index:index + 3] == ["on", "top", "of"]:
            end = index + (3 if word == "on" else 1)
            made = _relation(words, index, end, RELATION_WORDS.get(word, "above"), mentions)
        elif word in ("on", "at", "in", "to") and index + 1 < len(words) \
                and words[index + 1] == "the":
            region = _region(words, index + 2)
            if region is not None:
                end, (horizontal, vertical) = region
                if end < len(words) and words[end] == "of" and horizontal in HORIZONTAL \
                        and vertical is None and not (end + 2 < len(words)
                                                      and words[end + 2] in FRAME):
                    made = _relation(words, index, end + 1, horizontal, mentions)
                elif word != "to":
                    subject = _before_mention(index, mentions) \
                        or _after_mention(end, mentions)
                    if subject is not None:
                        made = Statement("position", index, end, (horizontal, vertical),
                                         subject)
        elif word == "background":
            start = index
            while start > 0 and words[start - 1] not in ARTICLES:
                start -= 1
            if start < index:
                made = Statement("background", start, index + 1, " ".join(words[start:index]))
        if made:
            found.append(made)
            index = made.end
        else:
            index += 1
    return found


def _relation(words, start, end, claim, mentions):
    subject = _before_mention(start, mentions)
    other = _after_mention(end, mentions)
    if subject is None or other is None:
        return None
    return Statement("relation", start, end, claim, subject, other)


def _counts(words, mentions, lexicon):
    """Count statements: number words before a mention or a generic noun, "N other ...",
    and repeated descriptions."""
    found, named = [], 0
    heads = {m.start - m.lead: m for m in mentions}
    seen = {}
    for index, word in enumerate(words):
        mention = heads.get(index)
        generic = None
        if mention is None and word in GENERIC:
            attributes, start = {}, index - 1
            while start >= 0 and words[start] in lexicon.attribute_words:
                name, value = lexicon.attribute_words[words[start]]
                attributes.setdefault(name, value)
                start -= 1
            generic, first = _Any(attributes=tuple(sorted(attributes.items()))), start + 1
        elif mention is not None:
            first = index
        else:
            continue
        before = first - 1
        other = before >= 0 and words[before] == "other"
        if other:
            before -= 1
        number = NUMBERS.get(words[before]) if before >= 0 else None
        subject = mention if mention is not None else generic
        end = mention.end if mention is not None else index + 1
        if number is not None:
            found.append(Statement("count", before, end, number, subject,
                                   before=named if other else 0))
        elif mention is not None:
            key = (mention.category, mention.attributes)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                found.append(Statement("count", mention.start - mention.lead, mention.end,
                                       seen[key], mention, exact=False))
        if mention is not None:
            named += number if number else 1
    return found


def _thirds(value, size):
    third = size / 3
    return "left" if value < third else "right" if value > 2 * third else "middle"


def _centre(obj):
    x, y, w, h = obj["bbox"]
    return x + w / 2, y + h / 2


def relation_holds(claim, a, b, rule="dominant"):
    """Whether object ``a`` is ``claim`` ("left", "right", "above", "below") of ``b``.

    rule: "dominant" (default): along the axis on which their box centres are further
    apart (a is left of b when b's centre is further right of a's than it is above or
    below it); "centre": by the centres along the claim's axis alone; "disjoint": a's box
    ends before b's begins along that axis."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    if rule == "disjoint":
        (x1, y1, w1, h1), (x2, y2, w2, h2) = a["bbox"], b["bbox"]
        return {"left": x1 + w1 <= x2, "right": x2 + w2 <= x1,
                "above": y1 + h1 <= y2, "below": y2 + h2 <= y1}[claim]
    dx, dy = bx - ax, by - ay
    along = {"left": dx, "right": -dx, "above": dy, "below": -dy}[claim]
    if rule == "centre":
        return along > 0
    across = abs(dy) if claim in ("left", "right") else abs(dx)
    return along > 0 and along >= across


def check(statement, objects, image_size, scene=None, rule="dominant"):
    """Whether ``statement`` is true of ``objects`` (the image's instances, with "bbox"),
    in an image of ``image_size`` (width, height) whose ``scene`` ({"background": ...})
    may be known; None where the data cannot decide (a background not recorded)."""
    kind = statement.kind
    if kind == "object":
        return bool(_matching(statement.subject, objects, size=False))
    if kind == "size":
        return bool(_matching(statement.subject, objects, size=True))
    if kind == "background":
        known = (scene or {}).get("background")
        if not isinstance(known, str):
            return None
        return known.lower() in statement.claim.split() or known.lower() == statement.claim
    if kind == "count":
        count = len(_matching(statement.subject, objects)) - statement.before
        return count == statement.claim if statement.exact else count >= statement.claim
    if kind == "position":
        width, height = image_size
        horizontal, vertical = statement.claim
        for obj in _matching(statement.subject, objects, size=False):
            x, y = _centre(obj)
            across = _thirds(x, width)
            down = {"left": "top", "right": "bottom", "middle": "middle"}[_thirds(y, height)]
            if horizontal in (None, across) and vertical in (None, down):
                return True
        return False
    if kind == "relation":
        return any(relation_holds(statement.claim, a, b, rule)
                   for a in _matching(statement.subject, objects, size=False)
                   for b in _matching(statement.other, objects, size=False) if a is not b)
    raise ValueError(f"unknown statement kind {kind!r}")


def check_caption(caption, objects, image_size, lexicon, scene=None, rule="dominant",
                  sizes=None):
    """[(Statement, true)] of ``caption``, those the data can decide. ``sizes``: whether
    size words are claims; by default where some object records a size."""
    if sizes is None:
        sizes = any(SIZE in o.get("attributes", {}) for o in objects)
    checked = []
    for statement in statements(caption, lexicon, sizes):
        true = check(statement, objects, image_size, scene, rule)
        if true is not None:
            checked.append((statement, true))
    return checked


def false_words(caption, objects, image_size, lexicon, scene=None, rule="dominant"):
    """{word index: kind} of the words of ``caption``'s false statements (a word in two
    false statements keeps the first kind; the object kind is ``grounding``'s business,
    so it is left out here)."""
    marked = {}
    for statement, true in check_caption(caption, objects, image_size, lexicon, scene, rule):
        if not true and statement.kind != "object":
            for index in range(statement.start, statement.end):
                marked.setdefault(index, statement.kind)
    return marked


def statement_scores(samples, lexicon, rule="dominant"):
    """Per kind the share of statements that are true, and the share of captions whose
    every statement is true.

    Args:
        samples: iterable of (caption (text or words), objects: the image's instances,
            image size (width, height), scene: {"background": ...} or None).
        rule: the relation rule (``relation_holds``).

    Returns:
        {"true_" + kind: share (NaN where the captions make no such statement),
        "statements_" + kind: how many, "all_true": share of captions whose every
        statement holds (a caption that states nothing holds), "statement_captions"}.
    """
    if rule not in RELATION_RULES:
        raise ValueError(f"rule must be one of {RELATION_RULES}. Received: {rule!r}")
    true, total = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
    captions = all_true = 0
    for caption, objects, image_size, scene in samples:
        checked = check_caption(caption, objects, image_size, lexicon, scene, rule)
        captions += 1
        all_true += all(holds for _, holds in checked)
        for statement, holds in checked:
            total[statement.kind] += 1
            true[statement.kind] += bool(holds)
    scores = {}
    for kind in KINDS:
        scores[f"true_{kind}"] = true[kind] / total[kind] if total[kind] else math.nan
        scores[f"statements_{kind}"] = total[kind]
    scores.update(all_true=all_true / captions if captions else math.nan,
                  statement_captions=captions)
    return scores
