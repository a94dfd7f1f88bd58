"""A COCO-style synthetic data set of simple scenes, regenerated exactly from a seed.

Each image shows one to three shapes (circle, square, triangle, diamond) in one of five
colours and two sizes, at random non-overlapping positions on a textured background. Each
image gets five captions from varied templates; every caption names every object by colour
and shape (left to right), so the captions can be checked for objects named or missed.

``--style hard`` makes data a recipe is not easily tuned on: one to four objects of eight
shapes (adding star, hexagon, pentagon, cross) in eleven colours and three sizes (small,
medium, large, 6 to 27 px at 128), partly occluding each other; dark, light, striped,
checkered or speckled backgrounds; clutter (thin lines and specks that are no object); and
captions that make checkable statements beyond the objects: where each object is ("a red
star at the top left", by the image's thirds), how two lie to each other ("a blue circle
to the right of a red star", "above", "below", by the dominant axis between box centres),
how many there are ("two red stars", "three shapes : ...", "a red star and two other
shapes", "a single ..."), sizes and the background, each in a share of the references
(docs/research/statements.md gives them); every statement is true of the boxes written,
by ``captioner.metrics.statements``. The background is also recorded per image
(the instances file's images carry ``"scene": {"background": KIND}``). ``--style simple``
(the default) is the original look: the same seed gives the same data set as before the
styles existed.

The output is the standard COCO layout, so whatever trains on it trains on COCO::

    OUT/annotations/captions_{train,val,test}2017.json
    OUT/annotations/instances_{train,val,test}2017.json   (box, category, colour, size)
    OUT/{train,val,test}2017/*.png
    OUT/dataset_synthetic.json                            (Karpathy-style split file)

    captioner synth --out data/synthetic --seed 0
    captioner synth --out data/hard --seed 1 --style hard
    captioner synth --out data/photo-sized --size 640 480 --format jpg

``--size W H`` draws each scene at 128 px and resizes it to W x H, with fine noise added
at full resolution (so a JPEG costs about what a photograph of that size does to decode),
boxes scaled alike: input-pipeline benchmarks use it for COCO-sized 640 x 480 JPEGs.
"""

import os

import numpy as np
from PIL import Image, ImageDraw

from captioner import io

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230),
           "yellow": (235, 215, 40), "purple": (150, 60, 200)}
SIZES = {"small": (9, 12), "large": (17, 22)}  # radius range in pixels, at 128 px
IMAGE_SIZE = 128
SPLITS = {"train": 4000, "val": 200, "test": 200}

HARD_SHAPES = SHAPES + ("star", "hexagon", "pentagon", "cross")
HARD_COLOURS = {**COLOURS, "orange": (245, 140, 30), "white": (240, 240, 240),
                "pink": (245, 135, 185), "cyan": (60, 215, 225), "brown": (135, 85, 40),
                "grey": (135, 135, 135)}
HARD_SIZES = {"small": (6, 9), "medium": (11, 15), "large": (18, 27)}
BACKGROUNDS = ("dark", "light", "striped", "checkered", "speckled")
STYLES = ("simple", "hard")


def _horizontal(x):
    return "left" if x < IMAGE_SIZE / 3 else "right" if x > 2 * IMAGE_SIZE / 3 else "middle"


def _vertical(y):
    return "top" if y < IMAGE_SIZE / 3 else "bottom" if y > 2 * IMAGE_SIZE / 3 else "middle"


def _place(rng, count, hard=False, background=None):
    """Objects: [{"shape", "colour", "size", "cx", "cy", "r"}], left to right. Simple:
    apart; hard: they may overlap by up to a quarter of their radii, drawn in the order
    placed (later ones occlude earlier ones), in colours that stand out from the
    background tint (``background``: its mean colour)."""
    shapes, colours, sizes = (HARD_SHAPES, HARD_COLOURS, HARD_SIZES) if hard else \
        (SHAPES, COLOURS, SIZES)
    objects = []
    while len(objects) < count:
        size = str(rng.choice(list(sizes)))
        radius = int(rng.integers(*sizes[size], endpoint=True))
        cx, cy = (int(value) for value in rng.integers(radius + 3, IMAGE_SIZE - radius - 3, 2))
        apart = (lambda o: (cx - o["cx"]) ** 2 + (cy - o["cy"]) ** 2
                 > (0.75 * (radius + o["r"])) ** 2) if hard else \
            (lambda o: (cx - o["cx"]) ** 2 + (cy - o["cy"]) ** 2 > (radius + o["r"] + 6) ** 2)
        if all(apart(o) for o in objects):
            shape = str(rng.choice(shapes))
            names = list(colours)
            if hard:  # visible: far enough from the background's tint
                names = [n for n in names
                         if np.abs(np.subtract(colours[n], background)).sum() > 150]
            objects.append(dict(shape=shape, colour=str(rng.choice(names)),
                                size=size, cx=cx, cy=cy, r=radius))
    for depth, o in enumerate(objects):
        o["depth"] = depth
    return sorted(objects, key=lambda o: o["cx"])


def _simple_background(rng):
    base = rng.integers(20, 90, 3)  # a dark background of random tint ...
    gradient = np.linspace(-15, 15, IMAGE_SIZE)[None, :, None] * rng.choice([-1, 1])
    noise = rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE, 3))  # ... with some texture
    return np.clip(base[None, None, :] + gradient + noise, 0, 255).astype(np.uint8)


def _hard_background(rng, kind):
    """(pixels, mean colour) of a background of ``kind`` (one of BACKGROUNDS)."""
    light = kind == "light" or (kind != "dark" and rng.random() < 0.5)
    base = rng.integers(170, 225, 3) if light else rng.integers(15, 80, 3)
    other = np.clip(base + rng.integers(25, 50) * (-1 if light else 1), 0, 255)
    y, x = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
    if kind == "striped":
        width, angle = int(rng.integers(4, 12)), float(rng.uniform(0, np.pi))
        phase = (x * np.cos(angle) + y * np.sin(angle)) // width
        pixels = np.where((phase % 2 == 0)[..., None], base, other).astype(np.float64)
    elif kind == "checkered":
        cell = int(rng.integers(6, 20))
        pixels = np.where((((x // cell) + (y // cell)) % 2 == 0)[..., None], base, other)
        pixels = pixels.astype(np.float64)
    else:  # dark, light, speckled: a tint with a gradient in a random direction
        angle = float(rng.uniform(0, 2 * np.pi))
        ramp = ((x - IMAGE_SIZE / 2) * np.cos(angle) + (y - IMAGE_SIZE / 2) * np.sin(angle))
        pixels = base[None, None, :] + (ramp * 30 / IMAGE_SIZE)[..., None]
        if kind == "speckled":
            spots = rng.random((IMAGE_SIZE, IMAGE_SIZE)) < 0.08
            pixels[spots] = other
    pixels = pixels + rng.normal(0, 6, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8), (base + other) / 2


def _vertices(o):
    """The polygon of a polygonal shape, None for a circle or a cross."""
    cx, cy, r, shape = o["cx"], o["cy"], o["r"], o["shape"]
    if shape == "square":
        side = int(r * 0.85)
        return [(cx - side, cy - side), (cx + side, cy - side), (cx + side, cy + side),
                (cx - side, cy + side)]
    if shape == "triangle":
        return [(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    corners = {"hexagon": 6, "pentagon": 5, "star": 10}.get(shape)
    if corners is None:
        return None
    radii = [r, r * 0.45] * 5 if shape == "star" else [r] * corners
    return [(cx + radius * np.sin(2 * np.pi * k / corners),
             cy - radius * np.cos(2 * np.pi * k / corners)) for k, radius in enumerate(radii)]


def _paint(draw, o, fill):
    cx, cy, r = o["cx"], o["cy"], o["r"]
    if o["shape"] == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif o["shape"] == "cross":
        arm = max(2, int(r * 0.35))
        draw.rectangle([cx - r, cy - arm, cx + r, cy + arm], fill=fill)
        draw.rectangle([cx - arm, cy - r, cx + arm, cy + r], fill=fill)
    elif o["shape"] == "square":
        side = int(r * 0.85)
        draw.rectangle([cx - side, cy - side, cx + side, cy + side], fill=fill)
    else:
        draw.polygon(_vertices(o), fill=fill)


def _clutter(rng, draw):
    """Thin lines and specks, smaller than any object, in random colours: no object."""
    for _ in range(int(rng.integers(0, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            points = [tuple(int(v) for v in rng.integers(0, IMAGE_SIZE, 2)) for _ in range(2)]
            draw.line(points, fill=colour, width=1)
        else:
            x, y = (int(v) for v in rng.integers(0, IMAGE_SIZE, 2))
            draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=colour)


def _draw(rng, objects, pixels=None, colours=COLOURS, clutter=False):
    """The scene; ``pixels``: a background (simple style: drawn here from ``rng``)."""
    image = Image.fromarray(_simple_background(rng) if pixels is None else pixels)
    draw = ImageDraw.Draw(image)
    if clutter:
        _clutter(rng, draw)
    for o in sorted(objects, key=lambda o: o.get("depth", 0)):
        _paint(draw, o, colours[o["colour"]])
    return image


def _box(o):
    """The object's tight box [x, y, w, h], matching what _draw paints."""
    cx, cy, r = o["cx"], o["cy"], o["r"]
    if o["shape"] == "square":
        side = int(r * 0.85)
        return [cx - side, cy - side, 2 * side + 1, 2 * side + 1]
    if o["shape"] == "triangle":
        return [cx - r, cy - r, 2 * r + 1, r * 1.8 + 1]
    if o["shape"] in ("star", "hexagon", "pentagon"):
        xs, ys = zip(*_vertices(o))
        left, top = int(np.floor(min(xs))), int(np.floor(min(ys)))
        return [left, top, int(np.ceil(max(xs))) - left + 1, int(np.ceil(max(ys))) - top + 1]
    return [cx - r, cy - r, 2 * r + 1, 2 * r + 1]


SIZE_WORDS = {"small": ["small", "little"], "medium": ["medium", "medium sized"],
              "large": ["large", "big"]}


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _captions(rng, objects):
    """Five different captions of the simple style, each naming every object's colour and
    shape."""
    def plain(o):
        return f"{_article(o['colour'])} {o['colour']} {o['shape']}"

    def sized(o):
        size = rng.choice(['small', 'little']) if o['size'] == 'small' \
            else rng.choice(['large', 'big'])
        return f"a {size} {o['colour']} {o['shape']}"

    def placed(o):
        h, v = _horizontal(o["cx"]), _vertical(o["cy"])
        where = "in the middle" if h == v == "middle" else \
            f"at the {v}" if h == "middle" else f"on the {h}" if v == "middle" \
            else f"at the {v} {h}"
        return f"{plain(o)} {where}"

    def join(phrases):
        return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]

    count = ["one", "two", "three", "four"][len(objects) - 1]
    templates = [
        lambda: join([plain(o) for o in objects]),
        lambda: join([sized(o) for o in objects]),
        lambda: join([placed(o) for o in objects]),
        lambda: f"{count} shape{'s' if len(objects) > 1 else ''} : "
        + join([plain(o) for o in objects]),
        lambda: "a picture of " + join([plain(o) for o in objects]) + " on a dark background",
        lambda: join([plain(o) for o in objects]) + " on a dark background",
        lambda: "there " + ("is " if len(objects) == 1 else "are ")
        + join([sized(o) for o in objects]),
    ]
    chosen = rng.choice(len(templates), 5, replace=False)
    return [templates[i]() for i in sorted(chosen)]


NUMBERS = ("no", "one", "two", "three", "four")


def _centre(o):
    """The centre of the object's box (what a statement checker reads positions from)."""
    x, y, w, h = _box(o)
    return x + w / 2, y + h / 2


def _where(o):
    """Where ``o`` is, by the image's thirds of its box centre: "in the middle", "at the
    top", "on the left", "at the top left" or "in the top left corner"."""
    x, y = _centre(o)
    h, v = _horizontal(x), _vertical(y)
    if h == v == "middle":
        return "in the middle"
    if h == "middle":
        return f"at the {v}"
    if v == "middle":
        return f"on the {h}"
    return f"at the {v} {h}"


def relation(a, b):
    """How ``a`` lies to ``b`` by the dominant axis between their box centres (the rule of
    ``captioner.metrics.statements``' default): "to the left of", "to the right of",
    "above" or "below"."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    dx, dy = bx - ax, by - ay
    if abs(dx) >= abs(dy):
        return "to the left of" if dx > 0 else "to the right of"
    return "above" if dy > 0 else "below"


def _hard_captions(rng, objects, background):
    """Five of six templates: a list; sizes and the background; each object's place; a
    relation between two objects; counts (grouped alike objects, "N shapes :", "... and N
    other shapes"); "there are" with sizes and counts. Every statement is true of the
    boxes written (``captioner.metrics.statements`` checks them)."""
    def plain(o):
        return f"{_article(o['colour'])} {o['colour']} {o['shape']}"

    def sized(o, size=None):
        size = size or str(rng.choice(SIZE_WORDS[o["size"]]))
        return f"{_article(size)} {size} {o['colour']} {o['shape']}"

    def join(phrases):
        return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]

    def grouped(key, words):
        """Alike objects (same ``key``) as one counted phrase: "two red stars"."""
        groups = {}
        for o in objects:
            groups.setdefault(key(o), []).append(o)
        phrases = []
        for found in groups.values():
            phrase = words(found[0])
            if len(found) > 1:
                *described, shape = phrase.split()[1:]
                phrase = " ".join([NUMBERS[len(found)], *described, shape + "s"])
            phrases.append(phrase)
        return join(phrases)

    def related():
        if len(objects) == 1:
            return f"a single {objects[0]['colour']} {objects[0]['shape']} {_where(objects[0])}"
        first, second = (int(i) for i in rng.choice(len(objects), 2, replace=False))
        a, b = objects[first], objects[second]
        rest = [plain(o) for o in objects if o is not a and o is not b]
        return join([f"{plain(a)} {relation(a, b)} {plain(b)}"] + rest)

    def counted():
        count = len(objects)
        shapes = "shape" if count == 1 else "shapes"
        choices = [lambda: f"{NUMBERS[count]} {shapes} : " + join([plain(o) for o in objects])]
        if count > 1:
            other = "other shape" if count == 2 else "other shapes"
            choices.append(lambda: f"{plain(objects[0])} and {NUMBERS[count - 1]} {other}")
        if len({(o["colour"], o["shape"]) for o in objects}) < count:
            choices.append(lambda: grouped(lambda o: (o["colour"], o["shape"]), plain))
        return choices[int(rng.integers(len(choices)))]()

    templates = [
        lambda: join([plain(o) for o in objects]),
        lambda: join([sized(o) for o in objects]) + f" on a {background} background",
        lambda: join([f"{plain(o)} {_where(o)}" for o in objects]),
        related,
        counted,
        lambda: "there " + ("is " if len(objects) == 1 else "are ")
        + grouped(lambda o: (o["size"], o["colour"], o["shape"]),
                  lambda o: sized(o, SIZE_WORDS[o["size"]][0])),
    ]
    chosen = rng.choice(len(templates), 5, replace=False)
    return [templates[i]() for i in sorted(chosen)]


def _resized(rng, image, size):
    """The scene at ``size`` (width, height), with per-pixel noise at that resolution."""
    if size == (IMAGE_SIZE, IMAGE_SIZE):
        return image
    pixels = np.asarray(image.resize(size, Image.BILINEAR), dtype=np.float32)
    pixels += rng.normal(0, 4, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _scene(rng, style):
    """(image at 128 px, objects, captions) of one scene."""
    if style == "simple":
        objects = _place(rng, int(rng.integers(1, 4)))
        return _draw(rng, objects), objects, None
    kind = str(rng.choice(BACKGROUNDS))
    pixels, tint = _hard_background(rng, kind)
    objects = _place(rng, int(rng.integers(1, 5)), hard=True, background=tint)
    return _draw(rng, objects, pixels, HARD_COLOURS, clutter=True), objects, kind


def generate(out, seed=0, splits=None, year="2017", size=(IMAGE_SIZE, IMAGE_SIZE),
             image_format="png", style="simple"):
    """Writes the data set to ``out``; returns {split: number of images}.

    ``size``: (width, height) of the images; ``image_format``: "png" or "jpg"; ``style``:
    "simple" or "hard" (see the module docstring)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}. Received: {style!r}")
    size = tuple(int(side) for side in size)
    scale_x, scale_y = size[0] / IMAGE_SIZE, size[1] / IMAGE_SIZE
    splits = dict(SPLITS if splits is None else splits)
    categories = [{"id": i + 1, "name": shape, "supercategory": "shape"}
                  for i, shape in enumerate(HARD_SHAPES if style == "hard" else SHAPES)]
    category_ids = {c["name"]: c["id"] for c in categories}
    karpathy = []
    image_id, annotation_id = 0, 0
    from tqdm import tqdm
    for split_index, (split, count) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])
        words = np.random.default_rng([seed, split_index, 1])  # the hard style's captions
        folder = os.path.join(out, f"{split}{year}")
        os.makedirs(folder, exist_ok=True)
        images, captions, instances, backgrounds = [], [], [], []
        for _ in tqdm(range(count), desc=f"synthetic {split}", unit="image", leave=False):
            image_id += 1
            scene, objects, background = _scene(rng, style)
            backgrounds.append(background)
            file_name = f"{image_id:06d}.{image_format}"
            with io.atomic_path(os.path.join(folder, file_name)) as temporary:
                picture = _resized(rng, scene, size)
                if image_format == "png":
                    picture.save(temporary, format="PNG")
                else:
                    picture.save(temporary, format="JPEG", quality=90)
            images.append({"id": image_id, "file_name": file_name,
                           "width": size[0], "height": size[1]})
            texts = _captions(rng, objects) if background is None else \
                _hard_captions(words, objects, background)
            for text in texts:
                annotation_id += 1
                captions.append({"id": annotation_id, "image_id": image_id, "caption": text})
            for o in objects:
                annotation_id += 1
                x, y, w, h = _box(o)
                box = [float(x * scale_x), float(y * scale_y), float(w * scale_x),
                       float(h * scale_y)]
                instances.append({"id": annotation_id, "image_id": image_id,
                                  "category_id": category_ids[o["shape"]], "bbox": box,
                                  "area": box[2] * box[3], "iscrowd": 0,
                                  "attributes": {"color": o["colour"], "size": o["size"]}})
            karpathy.append({"filepath": f"{split}{year}", "filename": file_name,
                             "imgid": image_id - 1, "cocoid": image_id, "split": split,
                             "sentences": [{"raw": t, "tokens": t.replace(",", " ").split()}
                                           for t in texts]})
        info = {"description": f"captioner synthetic shapes, {style} style, seed {seed}",
                "year": int(year)}
        io.write_json(os.path.join(out, "annotations", f"captions_{split}{year}.json"),
                      {"info": info, "images": images, "annotations": captions}, indent=None)
        scenes = [{**image, "scene": {"background": background}}
                  for image, background in zip(images, backgrounds)] \
            if style == "hard" else images
        io.write_json(os.path.join(out, "annotations", f"instances_{split}{year}.json"),
                      {"info": info, "images": scenes, "annotations": instances,
                       "categories": categories}, indent=None)
    io.write_json(os.path.join(out, "dataset_synthetic.json"),
                  {"dataset": "synthetic", "images": karpathy}, indent=None)
    return splits
