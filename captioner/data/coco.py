"""COCO captions / instances JSON and the Karpathy split JSON.

Both loaders return the same thing: a list of :class:`ImageRecord`, one per image, with
its file path and its captions. Every structural fault (malformed JSON, a missing key, an
annotation for an unknown image, an image file that is not there) raises
:class:`~captioner.errors.DataError` naming the file and the fault.
"""

import dataclasses
import os
import sys

from captioner import io
from captioner.errors import DataError
from captioner.text import tokenize

YEARS = ("2017", "2014", "")


@dataclasses.dataclass
class ImageRecord:
    image_id: int
    path: str
    captions: list
    width: int = 0
    height: int = 0


@dataclasses.dataclass
class SplitFiles:
    captions: str
    images: str
    instances: str = None  # None when the split has no instances file


def find_coco_split(root, split):
    """Locates ``root/annotations/captions_{split}{year}.json`` and its image folder."""
    for year in YEARS:
        captions = os.path.join(root, "annotations", f"captions_{split}{year}.json")
        if os.path.isfile(captions):
            images = os.path.join(root, f"{split}{year}")
            if not os.path.isdir(images):
                raise DataError(f"Image folder not found for {captions}: {images}")
            instances = os.path.join(root, "annotations", f"instances_{split}{year}.json")
            return SplitFiles(captions, images, instances if os.path.isfile(instances) else None)
    if not os.path.isdir(root):
        raise DataError(f"COCO folder not found: {root}")
    raise DataError(f"No captions_{split}2017.json or captions_{split}2014.json in "
                    f"{os.path.join(root, 'annotations')}")


def _require(items, key, where, path):
    for position, item in enumerate(items):
        if not isinstance(item, dict) or key not in item:
            raise DataError(f"{path}: {where}[{position}] has no '{key}'")


def _check_files(records, path):
    missing = [record.path for record in records if not os.path.isfile(record.path)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{path} names an image that is not there: {missing[0]}{more}")


def _drop_empty(records, path):
    """Removes captions with no words; drops images left without any, saying how many."""
    empty = 0
    for record in records:
        kept = [caption for caption in record.captions if tokenize(caption)]
        empty += len(record.captions) - len(kept)
        record.captions = kept
    kept_records = [record for record in records if record.captions]
    if empty:
        print(f"warning: {path}: skipped {empty} empty caption(s); "
              f"{len(records) - len(kept_records)} image(s) had none left", file=sys.stderr)
    return kept_records


def load_coco_captions(captions_path, image_folder, check_files=True):
    """Reads a COCO captions file; returns one ImageRecord per image, sorted by id."""
    data = io.read_json(captions_path, "COCO captions file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{captions_path}: expected an object with 'images' and 'annotations' lists")
    _require(data["images"], "id", "images", captions_path)
    _require(data["images"], "file_name", "images", captions_path)
    _require(data["annotations"], "image_id", "annotations", captions_path)
    _require(data["annotations"], "caption", "annotations", captions_path)
    records = {}
    for image in data["images"]:
        records[image["id"]] = ImageRecord(
            image_id=image["id"], path=os.path.join(image_folder, image["file_name"]),
            captions=[], width=image.get("width", 0), height=image.get("height", 0))
    for annotation in data["annotations"]:
        record = records.get(annotation["image_id"])
        if record is None:
            raise DataError(f"{captions_path}: annotation {annotation.get('id', '?')} refers to "
                            f"image_id {annotation['image_id']}, which is not in 'images'")
        if not isinstance(annotation["caption"], str):
            raise DataError(f"{captions_path}: annotation {annotation.get('id', '?')} has a "
                            "caption that is not a string")
        record.captions.append(annotation["caption"].strip())
    records = [records[key] for key in sorted(records)]
    if check_files:
        _check_files(records, captions_path)
    return _drop_empty(records, captions_path)


class Instances(dict):
    """``{image_id: [{"bbox": [x, y, w, h], "category": name, "attributes": {...}}]}``, with
    ``categories``, every category name the annotation file defines (used or not)."""

    def __init__(self, objects=(), categories=()):
        super().__init__(objects)
        self.categories = list(categories)


def load_coco_instances(instances_path):
    """Reads a COCO instances file into :class:`Instances`."""
    data = io.read_json(instances_path, "COCO instances file")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) \
            or not isinstance(data.get("categories"), list):
        raise DataError(f"{instances_path}: expected 'annotations' and 'categories' lists")
    _require(data["categories"], "id", "categories", instances_path)
    _require(data["categories"], "name", "categories", instances_path)
    names = {category["id"]: category["name"] for category in data["categories"]}
    objects = {}
    for key in ("image_id", "bbox", "category_id"):
        _require(data["annotations"], key, "annotations", instances_path)
    for annotation in data["annotations"]:
        if annotation["category_id"] not in names:
            raise DataError(f"{instances_path}: unknown category_id {annotation['category_id']}")
        objects.setdefault(annotation["image_id"], []).append({
            "bbox": [float(value) for value in annotation["bbox"]],
            "category": names[annotation["category_id"]],
            "attributes": dict(annotation.get("attributes", {})),
        })
    return Instances(objects, names.values())


def load_coco_split(root, split, check_files=True, instances=True):
    """Records (and instances, or None) of one split of a COCO-layout folder.

    ``instances=False`` leaves the instances file unread (training does not use it; COCO's
    train2017 one is 450 MB of JSON).
    """
    files = find_coco_split(root, split)
    records = load_coco_captions(files.captions, files.images, check_files)
    if not (instances and files.instances):
        return records, None
    return records, load_coco_instances(files.instances)


def read_karpathy(split_path):
    """Parses a Karpathy split JSON once; :func:`load_karpathy` takes the result too."""
    data = io.read_json(split_path, "Karpathy split file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{split_path}: expected an object with an 'images' list")
    for key in ("filename", "split", "sentences"):
        _require(data["images"], key, "images", split_path)
    return data


def load_karpathy(split_path, image_root, split, check_files=True, data=None):
    """Reads a Karpathy split JSON (``dataset_coco.json``) for one split.

    ``split="train"`` includes the ``restval`` images, as is customary. ``data``: the file
    already parsed by :func:`read_karpathy` (reading several splits parses it once).
    """
    data = data if data is not None else read_karpathy(split_path)
    wanted = {"train", "restval"} if split == "train" else {split}
    records = []
    for position, image in enumerate(data["images"]):
        if image["split"] not in wanted:
            continue
        captions = []
        for sentence in image["sentences"]:
            if isinstance(sentence, dict) and isinstance(sentence.get("raw"), str):
                captions.append(sentence["raw"].strip())
            elif isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
                captions.append(" ".join(sentence["tokens"]))
            else:
                raise DataError(f"{split_path}: images[{position}] has a sentence with neither "
                                "'raw' nor 'tokens'")
        image_id = image.get("cocoid", image.get("imgid", position))
        path = os.path.join(image_root, image.get("filepath", ""), image["filename"])
        records.append(ImageRecord(image_id=image_id, path=path, captions=captions))
    if not records:
        raise DataError(f"{split_path}: no images in split '{split}'")
    if check_files:
        _check_files(records, split_path)
    return _drop_empty(records, split_path)


class CaptionSource:
    """The splits of a COCO-layout folder (``coco``) or of a Karpathy split file
    (``karpathy``, images under ``images``); each annotation file is parsed once."""

    def __init__(self, coco=None, karpathy=None, images=None):
        if bool(coco) == bool(karpathy):
            raise ValueError("Give exactly one of coco (a folder) or karpathy (a split file).")
        self.coco, self.karpathy, self.images = coco, karpathy, images
        self.description = f"COCO layout {coco}" if coco else f"Karpathy split {karpathy}"
        self._parsed = None

    def split(self, name, instances=True, required=True):
        """(records, instances or None) of split ``name``; ([], None) for a missing split
        that is not ``required``. ``instances=False`` leaves the instances file unread."""
        try:
            if self.coco:
                return load_coco_split(self.coco, name, instances=instances)
            if self._parsed is None:
                self._parsed = read_karpathy(self.karpathy)
            return load_karpathy(self.karpathy, self.images, name, data=self._parsed), None
        except DataError:
            if required:
                raise
            return [], None
