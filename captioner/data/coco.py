"""COCO captions / instances JSON and the Karpathy split JSON.

Both loaders return the same thing: a list of :class:`ImageRecord`, one per image, with
its file path and its captions. Every structural fault (malformed JSON, a missing key, an
annotation for an unknown image, an image file that is not there) raises
:class:`~captioner.errors.DataError` naming the file and the fault.
"""

import collections.abc
import dataclasses
import json
import os
import re
import sys

import numpy as np

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
    for year in YEARS:  # COCO's test images come with image_info_test*.json, no captions
        if os.path.isfile(os.path.join(root, "annotations", f"image_info_{split}{year}.json")):
            raise DataError(f"the {split}{year} split of {root} has no captions (COCO "
                            f"publishes none for its test images): score val{year}, or the "
                            "test split of a Karpathy split file (--karpathy FILE --split test)")
    raise DataError(f"No captions_{split}2017.json or captions_{split}2014.json in "
                    f"{os.path.join(root, 'annotations')}")


_INFO = re.compile(r'^\s*\{\s*"info"\s*:\s*\{[^{}]*?"description"\s*:\s*("(?:[^"\\]|\\.)*")')


def data_description(captions_path):
    """The ``info.description`` a COCO captions file opens with ("COCO 2017 Dataset",
    "captioner synthetic shapes, hard style, seed 1"), read from its first bytes only (a
    COCO file is 90 MB); None where it does not open with one."""
    try:
        with open(captions_path, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
        found = _INFO.match(head)
        text = json.loads(found.group(1)) if found else None
    except (OSError, ValueError):
        return None
    return " ".join(text.split())[:120] if isinstance(text, str) and text.strip() else None


def _require(items, key, where, path, kinds=None, expected=None):
    """Every item of ``items`` is an object with ``key``, of one of ``kinds`` (types)
    where given (``expected`` says it in words); else DataError naming the file, the item
    and the field."""
    for position, item in enumerate(items):
        if not isinstance(item, dict) or key not in item:
            raise DataError(f"{path}: {where}[{position}] has no '{key}'")
        value = item[key]
        if kinds is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise DataError(f"{path}: {where}[{position}].{key} is {_shown(value)}; expected "
                            f"{expected}")


def _shown(value):
    """A JSON value as an error message shows it (a long one cut)."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_kind_of_ids(items, key, where, path):
    """Ids are integers or strings, not both (1 and "1" would be two images)."""
    kinds = {type(item[key]) for item in items}
    if len(kinds) > 1:
        raise DataError(f"{path}: {where} mixes integer and string {key}s; use one kind")


ANYWHERE = "--images-anywhere"  # the flag that lets annotations name images outside


def inside(folder, name, where, path, anywhere=False):
    """The path of image ``name`` (an annotation's file name) in ``folder``: DataError
    where it leaves the folder (an absolute path, "../") unless ``anywhere``."""
    joined = os.path.join(folder, name)
    if not anywhere and (os.path.isabs(name) or os.path.normpath(name).split(os.sep)[0]
                         == os.pardir):
        raise DataError(f"{path}: {where} names {_shown(name)}, outside the image folder "
                        f"{folder}; move or link the image into it, or give {ANYWHERE}")
    return joined


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


def load_coco_captions(captions_path, image_folder, check_files=True, anywhere=False):
    """Reads a COCO captions file; returns one ImageRecord per image, sorted by id.
    ``anywhere``: file names may leave ``image_folder`` (``inside``)."""
    data = io.read_json(captions_path, "COCO captions file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{captions_path}: expected an object with 'images' and "
                        "'annotations' lists")
    _require(data["images"], "id", "images", captions_path, (int, str),
             "an integer or a string")
    _one_kind_of_ids(data["images"], "id", "images", captions_path)
    _require(data["images"], "file_name", "images", captions_path, str, "a string")
    _require(data["annotations"], "image_id", "annotations", captions_path, (int, str),
             "an integer or a string")
    _require(data["annotations"], "caption", "annotations", captions_path)
    records = {}
    for position, image in enumerate(data["images"]):
        size = [image.get(key, 0) for key in ("width", "height")]
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 2 ** 31
               for v in size):
            raise DataError(f"{captions_path}: images[{position}] has a width or height that "
                            f"is not a size in pixels ({_shown(size)})")
        if image["id"] in records:
            raise DataError(f"{captions_path}: images[{position}] repeats the id "
                            f"{_shown(image['id'])}")
        records[image["id"]] = ImageRecord(
            image_id=image["id"], path=inside(image_folder, image["file_name"],
                                              f"images[{position}]", captions_path, anywhere),
            captions=[], width=int(size[0]), height=int(size[1]))
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


class Instances(collections.abc.Mapping):
    """The boxes of a split, as flat arrays: ``{image_id: [{"bbox": [x, y, w, h],
    "category": name, "attributes": {...}}]}`` to read, built per image on demand.

    ``categories``: every category name the annotation file defines (used or not);
    ``attributes``: {name: its values}; ``scenes``: {image_id: {fact: value}}, what the
    file records of whole images (an image entry's "scene", e.g. the synthetic sets'
    {"background": "striped"}), for the statement checks (``captioner.metrics
    .statements``). COCO's 860k training instances take about 40 MB
    here, against gigabytes as one Python dict per annotation.
    """

    def __init__(self, image_ids=(), boxes=(), category=(), categories=(), attributes=None,
                 scenes=None):
        self.scenes = dict(scenes or {})
        image_ids = np.asarray(image_ids, np.int64).reshape(-1)
        order = np.argsort(image_ids, kind="stable")
        self.image_ids = image_ids[order]
        self.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)[order]
        self.category = np.asarray(category, np.int32).reshape(-1)[order]
        self.categories = list(categories)
        # {name: (values, codes)}: codes[i] indexes values, -1 where object i has none
        self.attributes = {name: (list(values), np.asarray(codes, np.int32)[order])
                           for name, (values, codes) in (attributes or {}).items()}
        self._keys, self._starts = np.unique(self.image_ids, return_index=True)
        self._ends = np.append(self._starts[1:], len(self.image_ids))

    @classmethod
    def from_objects(cls, objects, categories=(), scenes=None):
        """From ``{image_id: [{"bbox", "category", "attributes"}]}`` (synthetic data, tests)."""
        names = list(dict.fromkeys([*categories] + [o["category"] for found in
                                                    objects.values() for o in found]))
        flat = [(image_id, o) for image_id, found in objects.items() for o in found]
        return cls([i for i, _ in flat], [o["bbox"] for _, o in flat],
                   [names.index(o["category"]) for _, o in flat], names,
                   _attribute_codes([o.get("attributes", {}) for _, o in flat]), scenes)

    def __getitem__(self, image_id):
        position = int(np.searchsorted(self._keys, image_id))
        if position == len(self._keys) or self._keys[position] != image_id:
            raise KeyError(image_id)
        return [self._object(index) for index in range(self._starts[position],
                                                       self._ends[position])]

    def _object(self, index):
        return {"bbox": self.boxes[index].tolist(),
                "category": self.categories[self.category[index]],
                "attributes": {name: values[codes[index]] for name, (values, codes)
                               in self.attributes.items() if codes[index] >= 0}}

    def __iter__(self):
        return iter(self._keys.tolist())

    def __len__(self):
        return len(self._keys)

    def used_categories(self):
        """The category names some object has."""
        return [self.categories[code] for code in np.unique(self.category)]

    def attribute_values(self):
        """{attribute: its values} (what ``ObjectLexicon.from_instances`` reads)."""
        return {name: list(values) for name, (values, _) in self.attributes.items()}


def _attribute_codes(attributes):
    """{name: (values, codes)} of per-object attribute dicts (string values only)."""
    attributes = [found if isinstance(found, dict) else {} for found in attributes]
    names = sorted({name for found in attributes for name, value in found.items()
                    if isinstance(value, str)})
    coded = {}
    for name in names:
        column = [found.get(name) if isinstance(found.get(name), str) else None
                  for found in attributes]
        values = sorted({value for value in column if value is not None})
        index = {value: code for code, value in enumerate(values)}
        coded[name] = (values, [index.get(value, -1) for value in column])
    return coded


# COCO's masks: polygons ([[x, y, ...], ...]) or run-length dicts; nothing here reads them,
# and parsing them is most of the time and memory of reading an instances file
SEGMENTATION = re.compile(r'"segmentation"\s*:\s*(?:\[\s*(?:\[[^\[\]]*\]\s*,?\s*)*\]|\{[^{}]*\})')


def _without_segmentation(handle, chunk=1 << 24):
    """The text of an open instances file with every mask replaced by 0, read in chunks:
    each is cut before its last "segmentation" key, so no mask straddles a cut."""
    kept, tail = [], ""
    while True:
        block = handle.read(chunk)
        text = tail + block
        cut = text.rfind('"segmentation"') if block else len(text)
        if cut <= 0:
            tail = text
        else:
            kept.append(SEGMENTATION.sub('"segmentation":0', text[:cut]))
            tail = text[cut:]
        if not block:
            return "".join(kept) + tail


def _compact_annotation(item):
    """An instance annotation as parsed: the tuple (image_id, category_id, bbox,
    attributes), a fraction of the memory of its dict (COCO has 860k of them); JSON itself
    gives no tuples."""
    if "bbox" in item and "image_id" in item and "category_id" in item:
        return item["image_id"], item["category_id"], item["bbox"], item.get("attributes")
    return item


def load_coco_instances(instances_path):
    """Reads a COCO instances file into :class:`Instances` (the boxes, categories and
    attributes; the masks are skipped unread)."""
    data = io.read_json(instances_path, "COCO instances file", prepare=_without_segmentation,
                        object_hook=_compact_annotation)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) \
            or not isinstance(data.get("categories"), list):
        raise DataError(f"{instances_path}: expected 'annotations' and 'categories' lists")
    _require(data["categories"], "id", "categories", instances_path, (int, str),
             "an integer or a string")
    _require(data["categories"], "name", "categories", instances_path, str, "a string")
    names = {category["id"]: category["name"] for category in data["categories"]}
    annotations = data.pop("annotations")
    images = data.get("images")
    scenes = {image["id"]: {key: value for key, value in image["scene"].items()
                            if isinstance(value, str)}
              for image in (images if isinstance(images, list) else ())
              if isinstance(image, dict) and isinstance(image.get("scene"), dict)
              and isinstance(image.get("id"), (int, str))}
    del data, images  # the rest of the images list: not needed
    index = {category: position for position, category in enumerate(names)}
    category = np.empty(len(annotations), np.int32)
    boxes = np.empty((len(annotations), 4), np.float64)
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, tuple):
            missing = next(key for key in ("image_id", "bbox", "category_id")
                           if not isinstance(annotation, dict) or key not in annotation)
            raise DataError(f"{instances_path}: annotations[{position}] has no '{missing}'")
        image_id, category_id, bbox, _ = annotation
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise DataError(f"{instances_path}: annotations[{position}].image_id is "
                            f"{_shown(image_id)}; expected an integer or a string")
        code = index.get(category_id) if isinstance(category_id, (int, str)) else None
        if code is None:
            raise DataError(f"{instances_path}: unknown category_id {category_id}")
        category[position] = code
        try:
            boxes[position] = bbox
        except (TypeError, ValueError):
            raise DataError(f"{instances_path}: annotations[{position}] has a bbox that is "
                            "not four numbers") from None
    image_ids = [annotation[0] for annotation in annotations]
    attributes = _attribute_codes([annotation[3] for annotation in annotations])
    return Instances(image_ids, boxes, category, list(names.values()), attributes, scenes)


def load_coco_split(root, split, check_files=True, instances=True, anywhere=False):
    """Records (and instances, or None) of one split of a COCO-layout folder.

    ``instances=False`` leaves the instances file unread (COCO's train2017 one is 450 MB
    of JSON). It is read first: what parsing it takes is freed before the captions are.
    ``anywhere``: file names may leave the image folder (``inside``).
    """
    files = find_coco_split(root, split)
    boxes = load_coco_instances(files.instances) if instances and files.instances else None
    return load_coco_captions(files.captions, files.images, check_files, anywhere), boxes


def read_karpathy(split_path):
    """Parses a Karpathy split JSON once; :func:`load_karpathy` takes the result too."""
    data = io.read_json(split_path, "Karpathy split file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{split_path}: expected an object with an 'images' list")
    for key in ("filename", "split", "sentences"):
        _require(data["images"], key, "images", split_path,
                 *{"filename": (str, "a string"), "split": (str, "a string"),
                   "sentences": (list, "a list")}[key])
    for key in ("filepath",):
        _require([image for image in data["images"] if key in image], key, "images",
                 split_path, str, "a string")
    for key in ("cocoid", "imgid"):
        _require([image for image in data["images"] if key in image], key, "images",
                 split_path, (int, str), "an integer or a string")
    return data


def load_karpathy(split_path, image_root, split, check_files=True, data=None, anywhere=False):
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
        path = inside(image_root, os.path.join(image.get("filepath", ""), image["filename"]),
                      f"images[{position}]", split_path, anywhere)
        records.append(ImageRecord(image_id=image_id, path=path, captions=captions))
    if not records:
        splits = sorted({str(image["split"]) for image in data["images"]})
        raise DataError(f"{split_path}: no images in split '{split}' (its splits: "
                        f"{', '.join(splits)})")
    if not any(record.captions for record in records):
        raise DataError(f"{split_path}: the {len(records)} images of split '{split}' have no "
                        "captions to score or train on")
    if check_files:
        _check_files(records, split_path)
    return _drop_empty(records, split_path)


class CaptionSource:
    """The splits of a COCO-layout folder (``coco``) or of a Karpathy split file
    (``karpathy``, images under ``images``); each annotation file is parsed once."""

    def __init__(self, coco=None, karpathy=None, images=None, anywhere=False):
        if bool(coco) == bool(karpathy):
            raise ValueError("Give exactly one of coco (a folder) or karpathy (a split file).")
        self.coco, self.karpathy, self.images = coco, karpathy, images
        self.anywhere = anywhere  # file names may leave the image folder
        self.description = f"COCO layout {coco}" if coco else f"Karpathy split {karpathy}"
        if coco:  # what the images are, where the captions file says
            try:
                said = data_description(find_coco_split(coco, "train").captions)
            except DataError:
                said = None
            if said:
                self.description = f"{said}: {self.description}"
        self._parsed = None

    def split(self, name, instances=True, required=True, check_files=True):
        """(records, instances or None) of split ``name``; ([], None) for a missing split
        that is not ``required``. ``instances=False`` leaves the instances file unread;
        ``check_files=False`` does not check that every image file is there."""
        try:
            if self.coco:
                return load_coco_split(self.coco, name, check_files, instances=instances,
                                       anywhere=self.anywhere)
            if self._parsed is None:
                self._parsed = read_karpathy(self.karpathy)
            return load_karpathy(self.karpathy, self.images, name, check_files,
                                 data=self._parsed, anywhere=self.anywhere), None
        except DataError:
            if required:
                raise
            return [], None
