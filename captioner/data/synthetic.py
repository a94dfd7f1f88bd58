"""A COCO-style synthetic data set of simple scenes, regenerated exactly from a seed.

Each image shows one to three shapes (circle, square, triangle, diamond) in one of five
colours and two sizes, at random non-overlapping positions on a textured background. Each
image gets five captions from varied templates; every caption names every object by colour
and shape (left to right), so the captions can be checked for objects named or missed.

The output is the standard COCO layout, so whatever trains on it trains on COCO::

    OUT/annotations/captions_{train,val,test}2017.json
    OUT/annotations/instances_{train,val,test}2017.json   (box, category, colour, size)
    OUT/{train,val,test}2017/*.png
    OUT/dataset_synthetic.json                            (Karpathy-style split file)

    python -m captioner.data.synthetic --out data/synthetic --seed 0
    python -m captioner.data.synthetic --out data/photo-sized --size 640 480 --format jpg

``--size W H`` draws each scene at 128 px and resizes it to W x H, with fine noise added
at full resolution (so a JPEG costs about what a photograph of that size does to decode),
boxes scaled alike: input-pipeline benchmarks use it for COCO-sized 640 x 480 JPEGs.
"""

import argparse
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


def _horizontal(x):
    return "left" if x < IMAGE_SIZE / 3 else "right" if x > 2 * IMAGE_SIZE / 3 else "middle"


def _vertical(y):
    return "top" if y < IMAGE_SIZE / 3 else "bottom" if y > 2 * IMAGE_SIZE / 3 else "middle"


def _place(rng, count):
    """Non-overlapping objects: [{"shape", "colour", "size", "cx", "cy", "r"}]."""
    objects = []
    while len(objects) < count:
        size = str(rng.choice(list(SIZES)))
        radius = int(rng.integers(*SIZES[size], endpoint=True))
        cx, cy = (int(value) for value in rng.integers(radius + 3, IMAGE_SIZE - radius - 3, 2))
        if all((cx - o["cx"]) ** 2 + (cy - o["cy"]) ** 2 > (radius + o["r"] + 6) ** 2
               for o in objects):
            objects.append(dict(shape=str(rng.choice(SHAPES)), colour=str(rng.choice(list(COLOURS))),
                                size=size, cx=cx, cy=cy, r=radius))
    return sorted(objects, key=lambda o: o["cx"])


def _draw(rng, objects):
    base = rng.integers(20, 90, 3)  # a dark background of random tint ...
    gradient = np.linspace(-15, 15, IMAGE_SIZE)[None, :, None] * rng.choice([-1, 1])
    noise = rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE, 3))  # ... with some texture
    pixels = np.clip(base[None, None, :] + gradient + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for o in objects:
        cx, cy, r, fill = o["cx"], o["cy"], o["r"], COLOURS[o["colour"]]
        if o["shape"] == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif o["shape"] == "square":
            side = int(r * 0.85)
            draw.rectangle([cx - side, cy - side, cx + side, cy + side], fill=fill)
        elif o["shape"] == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    return image


def _box(o):
    """The object's tight box [x, y, w, h], matching what _draw paints."""
    cx, cy, r = o["cx"], o["cy"], o["r"]
    if o["shape"] == "square":
        side = int(r * 0.85)
        return [cx - side, cy - side, 2 * side + 1, 2 * side + 1]
    if o["shape"] == "triangle":
        return [cx - r, cy - r, 2 * r + 1, r * 1.8 + 1]
    return [cx - r, cy - r, 2 * r + 1, 2 * r + 1]


def _captions(rng, objects):
    """Five different captions, each naming every object's colour and shape."""
    def plain(o):
        return f"a {o['colour']} {o['shape']}"

    def sized(o):
        return f"a {rng.choice(['small', 'little']) if o['size'] == 'small' else rng.choice(['large', 'big'])} {o['colour']} {o['shape']}"

    def placed(o):
        h, v = _horizontal(o["cx"]), _vertical(o["cy"])
        where = "in the middle" if h == v == "middle" else \
            f"at the {v}" if h == "middle" else f"on the {h}" if v == "middle" else f"at the {v} {h}"
        return f"{plain(o)} {where}"

    def join(phrases):
        return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]

    count = ["one", "two", "three"][len(objects) - 1]
    templates = [
        lambda: join([plain(o) for o in objects]),
        lambda: join([sized(o) for o in objects]),
        lambda: join([placed(o) for o in objects]),
        lambda: f"{count} shape{'s' if len(objects) > 1 else ''} : " + join([plain(o) for o in objects]),
        lambda: "a picture of " + join([plain(o) for o in objects]) + " on a dark background",
        lambda: join([plain(o) for o in objects]) + " on a dark background",
        lambda: "there " + ("is " if len(objects) == 1 else "are ") + join([sized(o) for o in objects]),
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


def generate(out, seed=0, splits=None, year="2017", size=(IMAGE_SIZE, IMAGE_SIZE),
             image_format="png"):
    """Writes the data set to ``out``; returns {split: number of images}.

    ``size``: (width, height) of the images; ``image_format``: "png" or "jpg"."""
    size = tuple(int(side) for side in size)
    scale_x, scale_y = size[0] / IMAGE_SIZE, size[1] / IMAGE_SIZE
    splits = dict(SPLITS if splits is None else splits)
    categories = [{"id": i + 1, "name": shape, "supercategory": "shape"}
                  for i, shape in enumerate(SHAPES)]
    category_ids = {c["name"]: c["id"] for c in categories}
    karpathy = []
    image_id, annotation_id = 0, 0
    from tqdm import tqdm
    for split_index, (split, count) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])
        folder = os.path.join(out, f"{split}{year}")
        os.makedirs(folder, exist_ok=True)
        images, captions, instances = [], [], []
        for _ in tqdm(range(count), desc=f"synthetic {split}", unit="image", leave=False):
            image_id += 1
            objects = _place(rng, int(rng.integers(1, 4)))
            file_name = f"{image_id:06d}.{image_format}"
            with io.atomic_path(os.path.join(folder, file_name)) as temporary:
                picture = _resized(rng, _draw(rng, objects), size)
                if image_format == "png":
                    picture.save(temporary, format="PNG")
                else:
                    picture.save(temporary, format="JPEG", quality=90)
            images.append({"id": image_id, "file_name": file_name,
                           "width": size[0], "height": size[1]})
            texts = _captions(rng, objects)
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
        info = {"description": f"captioner synthetic shapes, seed {seed}", "year": int(year)}
        io.write_json(os.path.join(out, "annotations", f"captions_{split}{year}.json"),
                      {"info": info, "images": images, "annotations": captions}, indent=None)
        io.write_json(os.path.join(out, "annotations", f"instances_{split}{year}.json"),
                      {"info": info, "images": images, "annotations": instances,
                       "categories": categories}, indent=None)
    io.write_json(os.path.join(out, "dataset_synthetic.json"),
                  {"dataset": "synthetic", "images": karpathy}, indent=None)
    return splits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the data set into")
    parser.add_argument("--seed", type=int, default=0)
    for split, count in SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=count, help=f"images ({count})")
    parser.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"),
                        default=(IMAGE_SIZE, IMAGE_SIZE), help=f"image size ({IMAGE_SIZE} "
                        f"{IMAGE_SIZE}; the scenes are drawn at that size and resized)")
    parser.add_argument("--format", choices=("png", "jpg"), default="png")
    args = parser.parse_args(argv)
    counts = generate(args.out, args.seed, {s: getattr(args, s) for s in SPLITS},
                      size=args.size, image_format=args.format)
    print(f"wrote {sum(counts.values())} images to {args.out}: {counts}")


if __name__ == "__main__":
    main()
