"""``captioner evaluate``: a COCO split and a Karpathy split scored alike, a split
without captions said plainly, and val scored by default where test has no captions."""

import json
import os
import shutil

import pytest

from tests.commands.helpers import assert_one_line_error, captioner


def karpathy_split(synthetic_coco, path, captions=True):
    """A Karpathy split file of the synthetic data's test images (its "test" split)."""
    data = json.load(open(os.path.join(synthetic_coco, "annotations",
                                       "captions_test2017.json")))
    sentences = {}
    for annotation in data["annotations"]:
        sentences.setdefault(annotation["image_id"], []).append(
            {"raw": annotation["caption"]} if captions else None)
    images = [{"filepath": "test2017", "filename": image["file_name"], "cocoid": image["id"],
               "split": "test",
               "sentences": [s for s in sentences.get(image["id"], []) if s]}
              for image in data["images"]]
    path.write_text(json.dumps({"images": images}))
    return path


@pytest.mark.slow  # two evaluations end to end
def test_evaluate_scores_a_karpathy_split_as_it_scores_the_coco_split(tmp_path, synthetic_coco,
                                                                     model_dir):
    split = karpathy_split(synthetic_coco, tmp_path / "dataset_synthetic.json")
    karpathy = captioner("evaluate", "--karpathy", split, "--images", synthetic_coco,
                         "--split", "test", "--model", model_dir, "--out", tmp_path / "k",
                         "--tokenizer", "captioner")
    assert karpathy.returncode == 0, karpathy.stderr
    coco = captioner("evaluate", "--coco", synthetic_coco, "--split", "test", "--model",
                     model_dir, "--out", tmp_path / "c", "--tokenizer", "captioner")
    assert coco.returncode == 0, coco.stderr
    scores = [json.loads((tmp_path / where / "scores_test_greedy.json").read_text())["scores"]
              for where in ("k", "c")]
    for metric in ("BLEU-4", "CIDEr", "images", "distinct_1", "distinct_2",
                   "repeated_ngrams"):
        assert scores[0][metric] == pytest.approx(scores[1][metric]), metric
    # the COCO folder has a train split, the Karpathy file none: novelty only for COCO,
    # and it is the share of the split's captions that no training caption is
    from captioner.data.coco import load_coco_split
    from captioner.text import tokenize
    train, _ = load_coco_split(synthetic_coco, "train")
    seen = {tuple(tokenize(c)) for record in train for c in record.captions}
    said = json.loads((tmp_path / "c" / "captions_test_greedy.json").read_text())
    assert "novel" not in scores[0]
    assert scores[1]["novel"] == pytest.approx(
        sum(tuple(tokenize(r["caption"])) not in seen for r in said) / len(said))
    assert f"scores:   {tmp_path / 'k' / 'scores_test_greedy.json'}" in karpathy.stdout


def test_evaluate_says_plainly_when_a_split_has_no_captions(tmp_path, synthetic_coco,
                                                            model_dir):
    split = karpathy_split(synthetic_coco, tmp_path / "empty.json", captions=False)
    assert_one_line_error(captioner("evaluate", "--karpathy", split, "--images", synthetic_coco,
                                     "--model", model_dir, "--out", tmp_path / "o"),
                          "split 'test' have no captions")
    assert_one_line_error(captioner("evaluate", "--karpathy", split, "--images", synthetic_coco,
                                     "--split", "testing", "--model", model_dir),
                          "no images in split 'testing' (its splits: test)")
    coco2017 = tmp_path / "coco"  # as COCO 2017 ships it: test images, image_info, no captions
    shutil.copytree(synthetic_coco, coco2017)
    os.rename(coco2017 / "annotations" / "captions_test2017.json",
              coco2017 / "annotations" / "image_info_test2017.json")
    assert_one_line_error(captioner("evaluate", "--coco", coco2017, "--split", "test",
                                    "--model", model_dir, "--out", tmp_path / "o"),
                          "the test2017 split", "has no captions", "score val2017")
    # without --split: val, said in one line
    found = captioner("evaluate", "--coco", coco2017, "--model", model_dir, "--limit", "2",
                      "--out", tmp_path / "v", "--tokenizer", "captioner")
    assert found.returncode == 0, found.stderr
    assert f"the test split of {coco2017} has no captions to score: scoring val" in found.stderr
    assert json.loads((tmp_path / "v" / "scores_val_greedy.json").read_text())["split"] == "val"
    assert_one_line_error(captioner("evaluate", "--model", model_dir), "--coco DIR")
