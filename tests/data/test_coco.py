import json
import os

import pytest
from PIL import Image

from captioner.data.coco import (
    CaptionSource,
    Instances,
    data_description,
    load_coco_captions,
    load_coco_instances,
    load_coco_split,
    load_karpathy,
)
from captioner.errors import DataError


def write_coco(folder, images, annotations):
    os.makedirs(folder / "annotations", exist_ok=True)
    os.makedirs(folder / "train2014", exist_ok=True)
    for image in images:
        Image.new("RGB", (8, 8)).save(folder / "train2014" / image["file_name"])
    path = folder / "annotations" / "captions_train2014.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_coco_loader_groups_captions_and_finds_2014_layout(tmp_path):
    write_coco(tmp_path, [{"id": 7, "file_name": "a.png"}, {"id": 3, "file_name": "b.png"}],
               [{"id": 1, "image_id": 7, "caption": "A cat."},
                {"id": 2, "image_id": 3, "caption": "a dog"},
                {"id": 3, "image_id": 7, "caption": "a small cat"}])
    records, instances = load_coco_split(str(tmp_path), "train")
    assert [r.image_id for r in records] == [3, 7]
    assert records[1].captions == ["A cat.", "a small cat"]
    assert records[1].path.endswith(os.path.join("train2014", "a.png"))
    assert instances is None


def test_training_leaves_the_instances_file_unread(tmp_path):
    write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}],
               [{"id": 1, "image_id": 1, "caption": "a cat"}])
    (tmp_path / "annotations" / "instances_train2014.json").write_text("{not json")
    records, instances = load_coco_split(str(tmp_path), "train", instances=False)
    assert len(records) == 1 and instances is None
    with pytest.raises(DataError, match="instances_train2014.json"):
        load_coco_split(str(tmp_path), "train")


def test_coco_loader_names_a_missing_image(tmp_path):
    path = write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}],
                      [{"id": 1, "image_id": 1, "caption": "a cat"}])
    data = json.loads(path.read_text())
    data["images"].append({"id": 2, "file_name": "gone.png"})
    data["annotations"].append({"id": 2, "image_id": 2, "caption": "a dog"})
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="gone.png"):
        load_coco_split(str(tmp_path), "train")


def test_coco_loader_rejects_malformed_json_and_bad_references(tmp_path):
    path = write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}], [])
    path.write_text('{"images": [}')
    with pytest.raises(DataError, match="not valid JSON.*line 1"):
        load_coco_captions(str(path), str(tmp_path / "train2014"))
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                                "annotations": [{"id": 5, "image_id": 9, "caption": "x"}]}))
    with pytest.raises(DataError, match="image_id 9"):
        load_coco_captions(str(path), str(tmp_path / "train2014"))
    path.write_text(json.dumps({"images": [{"file_name": "a.png"}], "annotations": []}))
    with pytest.raises(DataError, match=r"images\[0\] has no 'id'"):
        load_coco_captions(str(path), str(tmp_path / "train2014"))


def test_empty_captions_are_skipped_with_a_warning(tmp_path, capsys):
    write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
               [{"id": 1, "image_id": 1, "caption": "a cat"},
                {"id": 2, "image_id": 1, "caption": "  .  "},
                {"id": 3, "image_id": 2, "caption": ""}])
    records, _ = load_coco_split(str(tmp_path), "train")
    assert [(r.image_id, r.captions) for r in records] == [(1, ["a cat"])]
    assert "skipped 2 empty caption(s); 1 image(s)" in capsys.readouterr().err


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_coco_split(str(tmp_path / "nowhere"), "train")
    os.makedirs(tmp_path / "annotations")
    with pytest.raises(DataError, match="captions_val2017.json"):
        load_coco_split(str(tmp_path), "val")


def test_karpathy_loader_reads_splits_with_restval(tmp_path):
    os.makedirs(tmp_path / "imgs")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / name)
    images = [
        {"filepath": "imgs", "filename": "a.jpg", "cocoid": 1, "split": "train",
         "sentences": [{"raw": "A cat.", "tokens": ["a", "cat"]}]},
        {"filepath": "imgs", "filename": "b.jpg", "cocoid": 2, "split": "restval",
         "sentences": [{"tokens": ["a", "dog"]}]},
        {"filepath": "imgs", "filename": "c.jpg", "cocoid": 3, "split": "test",
         "sentences": [{"raw": "a bird"}]},
    ]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images}))
    train = load_karpathy(str(path), str(tmp_path), "train")
    assert [(r.image_id, r.captions) for r in train] == [(1, ["A cat."]), (2, ["a dog"])]
    assert [r.image_id for r in load_karpathy(str(path), str(tmp_path), "test")] == [3]
    from captioner.data.coco import CaptionSource
    source = CaptionSource(karpathy=str(path), images=str(tmp_path))
    assert [r.image_id for r in source.split("train")[0]] == [1, 2]
    path.write_text("{not json")  # parsed once: the other splits come from the first read
    assert [r.image_id for r in source.split("test")[0]] == [3]
    assert source.split("val", required=False) == ([], None)
    images[2]["filename"] = "missing.jpg"
    path.write_text(json.dumps({"images": images}))
    with pytest.raises(DataError, match="missing.jpg"):
        load_karpathy(str(path), str(tmp_path), "test")


def test_synthetic_data_has_coco_layout_and_matching_boxes(synthetic_coco):
    records, instances = load_coco_split(synthetic_coco, "train")
    assert len(records) == 24 and all(len(r.captions) == 5 for r in records)
    assert set(instances) == {r.image_id for r in records}
    for record in records:
        objects = instances[record.image_id]
        assert 1 <= len(objects) <= 3
        for caption in record.captions:  # every caption names every object
            for obj in objects:
                assert f"{obj['attributes']['color']} {obj['category']}" in caption
    karpathy = load_karpathy(os.path.join(synthetic_coco, "dataset_synthetic.json"),
                             synthetic_coco, "test")
    assert len(karpathy) == 6


def test_a_source_says_what_its_images_are_where_the_captions_file_does(synthetic_coco,
                                                                      tmp_path):
    """The description training records (and ``caption`` names for an image out of
    domain): the captions file's ``info.description``, read from its first bytes."""
    assert CaptionSource(synthetic_coco).description == (
        f"captioner synthetic shapes, simple style, seed 3: COCO layout {synthetic_coco}")
    plain = write_coco(tmp_path / "plain", [{"id": 1, "file_name": "a.png"}],
                       [{"image_id": 1, "caption": "a cat"}])
    assert data_description(plain) is None  # no info: the layout alone
    assert CaptionSource(str(tmp_path / "plain")).description == \
        f"COCO layout {tmp_path / 'plain'}"
    said = tmp_path / "said.json"
    said.write_text('{"info": {"url": "x", "description": "COCO \\"2017\\"\\n Dataset"}, '
                    '"images": []}')
    assert data_description(said) == 'COCO "2017" Dataset'
    said.write_text('{"images": [], "info": {"description": "late"}}')
    assert data_description(said) is None  # only an opening info is read


def test_synthetic_data_is_reproducible(tmp_path):
    from captioner.data.synthetic import generate
    generate(str(tmp_path / "a"), seed=5, splits={"train": 3})
    generate(str(tmp_path / "b"), seed=5, splits={"train": 3})
    for name in ("annotations/captions_train2017.json", "train2017/000002.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_instances_are_flat_arrays_read_without_their_masks(tmp_path):
    """Boxes, categories and attributes as the file says them; polygon and run-length
    masks (skipped unparsed) change nothing; a fault is reported where it is."""
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4],
         "segmentation": [[1.5, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]],
         "attributes": {"color": "red", "size": 2}},
        {"id": 2, "image_id": 5, "category_id": 1, "bbox": [0.5, 0, 10, 10],
         "segmentation": {"counts": [0, 4, 2], "size": [10, 10]}, "iscrowd": 1},
        {"id": 3, "image_id": 7, "category_id": 1, "bbox": [4, 4, 2, 2],
         "segmentation": [], "attributes": {"color": "blue"}},
    ]
    categories = [{"id": 1, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 4, "name": "cow"}]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [], "annotations": annotations,
                                "categories": categories}, indent=1))
    instances = load_coco_instances(str(path))
    assert sorted(instances) == [5, 7] and len(instances) == 2 and 6 not in instances
    assert instances[7] == [
        {"bbox": [1.0, 2.0, 3.0, 4.0], "category": "cat", "attributes": {"color": "red"}},
        {"bbox": [4.0, 4.0, 2.0, 2.0], "category": "dog", "attributes": {"color": "blue"}}]
    assert instances.get(5) == [{"bbox": [0.5, 0.0, 10.0, 10.0], "category": "dog",
                                 "attributes": {}}]
    assert instances.categories == ["dog", "cat", "cow"]
    assert sorted(instances.used_categories()) == ["cat", "dog"]
    assert instances.attribute_values() == {"color": ["blue", "red"]}
    assert Instances.from_objects({7: instances[7], 5: instances[5]})[7] == instances[7]
    lines = path.read_text().splitlines()
    broken = next(n for n, line in enumerate(lines) if '"iscrowd"' in line)
    lines[broken] = lines[broken].replace(":", "")
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=f"line {broken + 1} column"):
        load_coco_instances(str(path))


def test_masks_are_dropped_alike_however_the_file_is_cut(tmp_path):
    """The instances file is read in chunks; a mask never straddles a cut."""
    import io as text_io

    from captioner.data.coco import SEGMENTATION, _without_segmentation
    annotations = [{"id": i, "image_id": i % 3, "bbox": [i, 1, 2, 3],
                    "segmentation": [[float(v) for v in range(i % 9 + 2)]] if i % 4 else
                    {"counts": "abc" * i, "size": [4, 4]}} for i in range(40)]
    text = json.dumps({"annotations": annotations, "categories": []})
    whole = SEGMENTATION.sub('"segmentation":0', text)
    assert whole.count('"segmentation":0') == 40
    for chunk in (5, 17, 64, 1000, 10**6):
        assert _without_segmentation(text_io.StringIO(text), chunk) == whole
