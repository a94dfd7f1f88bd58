"""The synthetic data set's styles: the simple one as it always was, the hard one as its
docstring says (boxes around what is painted, captions whose every statement is true)."""

import collections
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from captioner.data.coco import load_coco_split
from captioner.data.synthetic import BACKGROUNDS, HARD_COLOURS, HARD_SHAPES, HARD_SIZES, generate
from captioner.data.vocab import tokenize
from captioner.metrics.lexicon import ObjectLexicon
from captioner.metrics.statements import check_caption


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


def test_the_simple_style_gives_the_data_sets_of_earlier_versions(tmp_path):
    """Old seeds reproduce: these digests are of what the generator wrote before it had
    styles (commit d656c3c), for seed 5."""
    generate(str(tmp_path), seed=5, splits={"train": 3, "val": 2})

    def annotations(name):
        with open(tmp_path / "annotations" / name) as handle:
            return json.dumps(json.load(handle)["annotations"], sort_keys=True).encode()

    assert digest(annotations("captions_train2017.json")) == "741411cc6d8cc702"
    assert digest(annotations("instances_val2017.json")) == "7049e75835939ea0"
    pixels = np.asarray(Image.open(tmp_path / "train2017" / "000001.png"))
    assert digest(pixels.tobytes()) == "c18ead6e1975c1f7"


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hard")
    generate(str(folder), seed=2, splits={"train": 60}, style="hard")
    records, instances = load_coco_split(str(folder), "train")
    with open(folder / "annotations" / "captions_train2017.json") as handle:
        files = {image["id"]: image["file_name"] for image in json.load(handle)["images"]}
    return folder, records, instances, files


def test_hard_scenes_vary_as_documented(hard):
    folder, records, instances, _ = hard
    objects = [obj for record in records for obj in instances[record.image_id]]
    assert {len(instances[r.image_id]) for r in records} == {1, 2, 3, 4}
    assert len({obj["category"] for obj in objects}) >= len(HARD_SHAPES) - 1
    assert len({obj["attributes"]["color"] for obj in objects}) >= len(HARD_COLOURS) - 2
    assert {obj["attributes"]["size"] for obj in objects} == set(HARD_SIZES)
    words = {word for r in records for c in r.captions for word in tokenize(c)}
    assert set(BACKGROUNDS) <= words
    assert {"left", "above", "below"} <= words

    def overlap(a, b):
        (ax, ay, aw, ah), (bx, by, bw, bh) = a["bbox"], b["bbox"]
        return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
    assert any(overlap(a, b) for r in records for i, a in enumerate(instances[r.image_id])
               for b in instances[r.image_id][i + 1:])  # objects occlude each other


def test_hard_boxes_hold_what_is_painted_in_their_colour(hard):
    folder, records, instances, files = hard
    for record in records:
        pixels = np.asarray(Image.open(folder / "train2017" / files[record.image_id]))
        by_colour = collections.defaultdict(list)
        for obj in instances[record.image_id]:
            by_colour[obj["attributes"]["color"]].append(obj["bbox"])
        for colour, boxes in by_colour.items():
            painted = np.all(pixels == HARD_COLOURS[colour], axis=-1)
            inside = np.zeros_like(painted)
            for x, y, w, h in boxes:
                region = painted[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))]
                assert region.mean() > 0.15, (record.image_id, colour)  # visible, if occluded
                inside[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
            assert not (painted & ~inside).any(), (record.image_id, colour)


def test_every_statement_of_the_hard_references_is_true_and_each_kind_is_common(hard):
    """Positions, relations, counts, sizes and backgrounds are each stated in a share of
    the references (the module docstring's figures, measured on 10,000), and every one
    of them holds by the statement checks, as do the objects named."""
    _, records, instances, _ = hard
    lexicon = ObjectLexicon.from_instances(instances)
    stating = collections.Counter()
    captions = 0
    for record in records:
        objects = instances[record.image_id]
        for caption in record.captions:
            checked = check_caption(caption, objects, (record.width, record.height), lexicon,
                                    instances.scenes[record.image_id])
            assert all(true for _, true in checked), caption
            assert {s.kind for s, _ in checked} >= {"object"}
            stating.update({s.kind for s, _ in checked})
            captions += 1
    shares = {kind: stating[kind] / captions for kind in stating}
    assert all(shares[kind] >= 0.08 for kind in
               ("position", "relation", "count", "size", "background")), shares
