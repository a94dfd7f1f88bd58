"""Which words name which object: categories with plurals and synonyms, and attributes.

A mention is a run of words that names a category ("dog", "dogs", "puppy", "hot dog",
"traffic lights"), with the attribute words just before it ("small red circle" ->
{"size": "small", "color": "red"}). Phrases are matched longest first, so "teddy bear" is
a teddy bear and not a bear. The synonym table covers the 80 COCO categories (after
Rohrbach et al. 2018, abridged) and the synthetic shapes; categories outside it are named
by their own name and its plural.
"""

import dataclasses

from captioner.text import tokenize

SYNONYMS = {
    # the synthetic data set's shapes
    "circle": ["circle", "disc", "disk"], "square": ["square"], "triangle": ["triangle"],
    "diamond": ["diamond", "rhombus"],
    # COCO
    "person": ["person", "man", "woman", "boy", "girl", "child", "kid", "guy", "lady",
               "baby", "adult", "player", "skier", "surfer", "skateboarder", "snowboarder",
               "rider", "pedestrian", "tourist", "biker"],
    "bicycle": ["bicycle", "bike", "cycle"], "car": ["car", "automobile", "taxi", "sedan", "suv"],
    "motorcycle": ["motorcycle", "motorbike", "motor bike", "scooter", "moped"],
    "airplane": ["airplane", "plane", "jet", "aircraft", "airliner"], "bus": ["bus"],
    "train": ["train", "locomotive", "tram"], "truck": ["truck", "lorry", "pickup truck"],
    "boat": ["boat", "ship", "sailboat", "kayak", "canoe", "yacht"],
    "traffic light": ["traffic light", "stop light", "traffic signal"],
    "fire hydrant": ["fire hydrant", "hydrant"], "stop sign": ["stop sign"],
    "parking meter": ["parking meter"], "bench": ["bench"],
    "bird": ["bird", "duck", "pigeon", "seagull", "gull", "goose", "parrot", "owl"],
    "cat": ["cat", "kitten", "kitty"], "dog": ["dog", "puppy", "pup"],
    "horse": ["horse", "pony", "foal"], "sheep": ["sheep", "lamb"],
    "cow": ["cow", "cattle", "calf", "bull", "ox"], "elephant": ["elephant"], "bear": ["bear"],
    "zebra": ["zebra"], "giraffe": ["giraffe"], "backpack": ["backpack", "rucksack"],
    "umbrella": ["umbrella", "parasol"], "handbag": ["handbag", "purse", "hand bag"],
    "tie": ["tie", "necktie"], "suitcase": ["suitcase", "luggage", "suit case"],
    "frisbee": ["frisbee"], "skis": ["skis", "ski"], "snowboard": ["snowboard"],
    "sports ball": ["ball", "soccer ball", "football", "tennis ball", "sports ball"],
    "kite": ["kite"], "baseball bat": ["baseball bat", "bat"],
    "baseball glove": ["baseball glove", "glove", "mitt"], "skateboard": ["skateboard"],
    "surfboard": ["surfboard", "surf board"],
    "tennis racket": ["tennis racket", "racket", "racquet"], "bottle": ["bottle"],
    "wine glass": ["wine glass"], "cup": ["cup", "mug"], "fork": ["fork"], "knife": ["knife"],
    "spoon": ["spoon"], "bowl": ["bowl"], "banana": ["banana"], "apple": ["apple"],
    "sandwich": ["sandwich", "burger", "sub"], "orange": ["orange"], "broccoli": ["broccoli"],
    "carrot": ["carrot"], "hot dog": ["hot dog"], "pizza": ["pizza"],
    "donut": ["donut", "doughnut"], "cake": ["cake", "cupcake"], "chair": ["chair", "stool"],
    "couch": ["couch", "sofa"], "potted plant": ["potted plant", "houseplant", "plant"],
    "bed": ["bed"], "dining table": ["dining table", "table"], "toilet": ["toilet"],
    "tv": ["tv", "television"], "laptop": ["laptop", "computer"], "mouse": ["mouse"],
    "remote": ["remote", "controller"], "keyboard": ["keyboard"],
    "cell phone": ["cell phone", "phone", "cellphone", "smartphone"],
    "microwave": ["microwave"], "oven": ["oven", "stove"], "toaster": ["toaster"],
    "sink": ["sink"], "refrigerator": ["refrigerator", "fridge"], "book": ["book"],
    "clock": ["clock"], "vase": ["vase"], "scissors": ["scissors"],
    "teddy bear": ["teddy bear", "teddy", "stuffed animal"],
    "hair drier": ["hair drier", "hair dryer", "blow dryer"], "toothbrush": ["toothbrush"],
}
ATTRIBUTE_SYNONYMS = {"big": "large", "little": "small", "tiny": "small", "huge": "large",
                      "grey": "gray"}
IRREGULAR_PLURALS = {"person": "people", "man": "men", "woman": "women", "child": "children",
                     "mouse": "mice", "knife": "knives", "sheep": "sheep", "skis": "skis",
                     "scissors": "scissors", "calf": "calves", "ox": "oxen", "goose": "geese",
                     "broccoli": "broccoli", "cattle": "cattle", "luggage": "luggage"}


def as_words(caption):
    """A caption given as text or as a list of words -> its list of words."""
    return caption if isinstance(caption, (list, tuple)) else tokenize(caption)


def plural(word):
    """English plural of one word (the irregular ones COCO needs, then the usual rules)."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


@dataclasses.dataclass(frozen=True)
class Mention:
    start: int          # index of the phrase's first word
    end: int            # one past its last word; end - 1 is the head noun
    category: str
    attributes: tuple   # ((attribute, value), ...) from the words just before the phrase
    lead: int = dataclasses.field(default=0, compare=False)  # how many attribute words
                                                              # precede ``start``

    def matches(self, obj):
        """Whether ``obj`` ({"category", "attributes"}) is what this mention names."""
        if obj["category"] != self.category:
            return False
        known = obj.get("attributes", {})
        return all(str(known.get(name, "")).lower() == value for name, value in self.attributes)


class ObjectLexicon:
    """Finds object mentions in tokenised captions.

    Args:
        categories: the category names of the data (e.g. COCO's 80, or the shapes).
        attributes: {attribute: [values]} that may precede a category word ("color":
            ["red", ...]); mentions then carry them and match on attribute + category.
        synonyms: {category: [words or phrases]}; defaults to ``SYNONYMS``.
    """

    def __init__(self, categories, attributes=None, synonyms=None):
        synonyms = SYNONYMS if synonyms is None else synonyms
        self.categories = sorted(categories)
        self.phrases = {}
        for category in self.categories:
            for name in synonyms.get(category, [category]) + [category]:
                words = tuple(name.lower().split())
                for form in (words, words[:-1] + (plural(words[-1]),)):
                    self.phrases.setdefault(form, category)
        self.longest = max((len(phrase) for phrase in self.phrases), default=0)
        self.attribute_words = {}
        for name, values in (attributes or {}).items():
            for value in values:
                self.attribute_words[str(value).lower()] = (name, str(value).lower())
        for word, value in ATTRIBUTE_SYNONYMS.items():
            for name, known in list(self.attribute_words.values()):
                if known == value:
                    self.attribute_words.setdefault(word, (name, value))

    @classmethod
    def from_instances(cls, instances, categories=None):
        """A lexicon for the categories and attribute values found in ``instances``
        ({image_id: [{"category", "attributes"}]}), plus any ``categories`` given."""
        names, attributes = set(categories or ()), {}
        if hasattr(instances, "attribute_values"):  # captioner.data.coco.Instances
            return cls(names | set(instances.used_categories()), instances.attribute_values())
        for objects in instances.values():
            for obj in objects:
                names.add(obj["category"])
                for key, value in obj.get("attributes", {}).items():
                    if isinstance(value, str):
                        attributes.setdefault(key, set()).add(value)
        return cls(names, {key: sorted(values) for key, values in attributes.items()})

    def mentions(self, words):
        """The mentions in a list of words, left to right (see ``Mention``)."""
        found, position, taken = [], 0, 0
        while position < len(words):
            for length in range(min(self.longest, len(words) - position), 0, -1):
                category = self.phrases.get(tuple(words[position:position + length]))
                if category is not None:
                    break
            else:
                position += 1
                continue
            attributes, before = {}, position - 1
            while before >= taken and words[before] in self.attribute_words:
                name, value = self.attribute_words[words[before]]
                attributes.setdefault(name, value)  # the word nearest the noun wins
                before -= 1
            found.append(Mention(position, position + length, category,
                                 tuple(sorted(attributes.items())), position - before - 1))
            position = taken = position + length
        return found
