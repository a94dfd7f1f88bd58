"""``captioner caption`` (and ``caption.py``): images, folders and annotated splits to
captions, JSON, heat maps and reports; one unreadable input never costs the others; every
mistake is one line. Its main runs in this process as the real command runs it."""

import json
import os
import shutil

import pytest
from PIL import Image

from tests.commands.helpers import assert_one_line_error, run, run_process


def test_caption_folder_as_json_with_attention_pngs(synthetic_coco, model_dir, tmp_path):
    folder = os.path.join(synthetic_coco, "test2017")
    result = run("caption.py", folder, "--model", model_dir, "--json",
                 "--attention-dir", tmp_path / "maps")
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)  # standard output holds the JSON and nothing else
    assert len(results) == len(os.listdir(folder))
    for item in results:
        assert item["caption"] == " ".join(w["word"] for w in item["words"])
        assert all(0 < w["probability"] <= 1 for w in item["words"])
        with Image.open(item["attention_png"]) as png:
            assert png.format == "PNG" and png.width > 100
    assert f"heat maps: {tmp_path / 'maps'}" in result.stderr.splitlines()  # where they went


def test_caption_prints_one_line_per_image(synthetic_coco, model_dir):
    images = sorted(os.listdir(os.path.join(synthetic_coco, "test2017")))[:2]
    paths = [os.path.join(synthetic_coco, "test2017", name) for name in images]
    result = run_process("caption.py", *paths, "--model", model_dir)  # the real process
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == paths


def test_caption_beam_n_best_text_and_json(synthetic_coco, model_dir, tmp_path):
    image = os.path.join(synthetic_coco, "test2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "test2017")))[0])
    result = run("caption.py", image, "--model", model_dir, "--beam", 3, "--n-best", 2,
                 "--json", "--attention-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    item, = json.loads(result.stdout)
    assert len(item["n_best"]) == 2 and item["n_best"][0]["caption"] == item["caption"]
    assert item["n_best"][0]["score"] >= item["n_best"][1]["score"]
    for entry in item["n_best"]:
        assert os.path.isfile(entry["attention_png"])
    text = run("caption.py", image, "--model", model_dir, "--beam", 3, "--n-best", 2)
    assert text.returncode == 0 and text.stdout.splitlines()[1].lstrip().startswith("2. ")
    assert_one_line_error(run("caption.py", image, "--model", model_dir, "--beam", 2,
                              "--n-best", 3), "--n-best")


@pytest.mark.slow  # end to end: a split scored by the command
def test_caption_scores_an_annotated_split_and_says_which_images_it_skipped(
        synthetic_coco, model_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_coco, data)
    images = sorted((data / "test2017").iterdir())
    images[1].write_bytes(images[1].read_bytes()[:150])  # truncated
    images[4].unlink()  # named by the annotations, not there
    result = run("caption.py", "--coco", data, "--split", "test", "--model", model_dir,
                 "--beam", 2, "--out", tmp_path / "evaluation", "--json")
    assert result.returncode == 1, result.stderr  # some images could not be read
    report = json.loads(result.stdout)
    expected = {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr", "object_precision", "object_recall",
                "chair_s", "attention_correctness", "uniform_baseline", "ms_per_image"}
    if report["notes"]["tokenizer"] == "ptb":
        expected.add("METEOR")
    assert expected <= set(report["scores"]) and report["scores"]["images"] == 4
    assert sorted(report["notes"]["unreadable"]) == sorted([str(images[1]), str(images[4])])
    assert "skipped 2 of 6 images of the split that cannot be read" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "Traceback" not in result.stderr
    results = json.loads((tmp_path / "evaluation" / "captions_test_beam2.json").read_text())
    assert len(results) == 4 and set(results[0]) == {"image_id", "caption"}
    assert json.loads((tmp_path / "evaluation" / "scores_test_beam2.json").read_text()) == report


def test_one_unreadable_input_never_costs_the_others(synthetic_coco, model_dir, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(os.path.join(synthetic_coco, "test2017"), folder)
    images = sorted(folder.iterdir())
    truncated = images[2]
    truncated.write_bytes(truncated.read_bytes()[:200])
    (folder / "notes.png").write_text("not an image")
    missing = tmp_path / "missing.jpg"
    result = run("caption.py", folder, missing, "--model", model_dir, "--json",
                 "--attention-dir", tmp_path / "maps", "--html", tmp_path / "html")
    assert result.returncode == 1, result.stderr  # 0: all answered, 1: some, 2: none
    results = json.loads(result.stdout)
    failed = {item["path"]: item["error"] for item in results if "error" in item}
    assert set(failed) == {str(missing), str(truncated), str(folder / "notes.png")}
    assert "truncated" in failed[str(truncated)] and "Not an image" in \
        failed[str(folder / "notes.png")]
    captioned = [item for item in results if "caption" in item]
    assert sorted(item["path"] for item in captioned) == sorted(
        str(path) for path in images if path != truncated)
    assert all(os.path.isfile(item["attention_png"]) for item in captioned)
    assert sorted(os.listdir(tmp_path / "maps")) == [".captioner-maps"] + sorted(
        f"{path.stem}_attention.png" for path in images if path != truncated)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(errors) == sorted(f"error: {why}" for why in failed.values())
    assert "answered 5 of 8 inputs; 3 could not be read" in result.stderr
    assert "Traceback" not in result.stderr
    manifest = (tmp_path / "html" / "data" / "manifest.js").read_text()
    manifest = json.loads(manifest[manifest.index("(") + 1:manifest.rindex(")")])
    assert len(manifest["items"]) == 5
    assert sorted(row[1] for row in manifest["summary"] if row[0] == "not read") == \
        sorted(failed)
    text = run("caption.py", images[0], truncated, "--model", model_dir)
    assert text.returncode == 1
    assert text.stdout.startswith(f"{images[0]}: ")
    assert f"error: Cannot decode image {truncated}" in text.stderr
    nothing = run("caption.py", missing, tmp_path / "empty", "--model", model_dir)
    assert nothing.returncode == 2
    assert nothing.stderr.splitlines() == [f"error: Image not found: {missing}",
                                           f"error: Image not found: {tmp_path / 'empty'}"]


def test_an_output_the_system_refuses_is_one_line_and_leaves_no_half_file(
        synthetic_coco, model_dir, tmp_path):
    """The kernel refuses to let the process grow a file beyond 4 kB (RLIMIT_FSIZE), as a
    full disk would: the attention PNG cannot be written."""
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    image = os.path.join(synthetic_coco, "test2017",
                         sorted(os.listdir(os.path.join(synthetic_coco, "test2017")))[0])
    result = run_process("caption.py", image, "--model", model_dir, "--attention-dir",
                         tmp_path / "maps", preexec_fn=limit)
    assert_one_line_error(result, "Cannot write", "_attention.png: File too large")
    # no half-written PNG, no temporary file: the folder's mark alone
    assert os.listdir(tmp_path / "maps") == [".captioner-maps"]


def test_caption_user_mistakes_exit_2_with_one_line(tmp_path, model_dir, synthetic_coco):
    assert_one_line_error(run("caption.py", tmp_path / "nope.jpg", "--model", model_dir),
                          "not found", "nope.jpg")
    (tmp_path / "fake.png").write_text("hello")
    assert_one_line_error(run("caption.py", tmp_path / "fake.png", "--model", model_dir),
                          "Not an image", "fake.png")
    image = os.path.join(synthetic_coco, "test2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "test2017")))[0])
    assert_one_line_error(run("caption.py", image, "--model", tmp_path / "no_model"),
                          "Model folder not found")
    assert_one_line_error(run("caption.py", image, "--model", tmp_path), "Not a model folder")
    (tmp_path / "file").write_text("a file")  # output folders that cannot be folders
    for option in ("--attention-dir", "--html"):
        assert_one_line_error(run("caption.py", image, "--model", model_dir, option,
                                  tmp_path / "file"), option, "is a file, not a folder")
        assert_one_line_error(run("caption.py", image, "--model", model_dir, option,
                                  tmp_path / "file" / "under"), option, "cannot be made")
    assert_one_line_error(run("caption.py", "--coco", synthetic_coco, "--model", model_dir,
                              "--out", tmp_path / "file"), "--out", "is a file")
    assert (tmp_path / "file").read_text() == "a file"


@pytest.mark.slow  # end to end: scoring, heat maps and the report of a split
def test_scoring_a_split_writes_its_heat_maps_and_its_report_together(synthetic_coco,
                                                                      model_dir, tmp_path):
    result = run("caption.py", "--coco", synthetic_coco, "--split", "test", "--model",
                 model_dir, "--out", tmp_path / "scores", "--tokenizer", "captioner",
                 "--attention-dir", tmp_path / "maps", "--html", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    images = sorted(os.listdir(os.path.join(synthetic_coco, "test2017")))
    assert sorted(os.listdir(tmp_path / "maps")) == [".captioner-maps"] + sorted(
        f"{os.path.splitext(name)[0]}_attention.png" for name in images)
    manifest = (tmp_path / "report" / "data" / "manifest.js").read_text()
    manifest = json.loads(manifest[manifest.index("(") + 1:manifest.rindex(")")])
    assert len(manifest["items"]) == len(images)


def test_shards_are_disjoint_and_together_all_the_inputs():
    from captioner.batch_jobs import parse_shard, shard
    paths = [f"photos/{folder}/{number:06d}.jpg" for folder in ("a", "b") for number in range(500)]
    shares = [shard(paths, index, 7) for index in range(7)]
    assert sorted(sum(shares, [])) == sorted(paths)  # together all of them, each once
    assert min(map(len, shares)) > 100  # and each about a seventh
    assert shard(list(reversed(paths)), 3, 7) == list(reversed(shares[3]))  # by path, not order
    assert parse_shard("0/1") == (0, 1)
    for bad in ("7/7", "-1/3", "3", "a/b", "1/0"):
        try:
            parse_shard(bad)
        except ValueError as error:
            assert "--shard" in str(error)
        else:
            raise AssertionError(bad)


def test_jsonl_streams_answers_and_a_second_run_resumes_where_the_first_stopped(
        synthetic_coco, model_dir, tmp_path):
    folder = os.path.join(synthetic_coco, "test2017")
    names = sorted(os.listdir(folder))
    out = tmp_path / "answers.jsonl"
    from captioner.batch_jobs import shard
    paths = [os.path.join(folder, name) for name in names]
    count, index = next((count, index) for count in range(2, 7) for index in range(count)
                        if 0 < len(shard(paths, index, count)) < len(paths))
    result = run("caption.py", folder, "--model", model_dir, "--jsonl", out, "--shard",
                 f"{index}/{count}")  # one shard ran
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    first = {json.loads(line)["path"] for line in lines}
    assert sorted(first) == sorted(shard(paths, index, count))
    out.write_bytes(out.read_bytes() + b'{"path": "cut sh')  # a run stopped mid-line
    result = run("caption.py", folder, "--model", model_dir, "--jsonl", out)
    assert result.returncode == 0, result.stderr
    assert f"{len(first)} of {len(names)} images are captioned there already" in result.stderr
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [entry["path"] for entry in entries][:len(lines)] == [json.loads(line)["path"]
                                                                   for line in lines]
    assert sorted(entry["path"] for entry in entries) == sorted(
        os.path.join(folder, name) for name in names)  # each image once, the cut line gone
    again = run("caption.py", folder, "--model", model_dir, "--jsonl", out)
    assert again.returncode == 0 and "nothing to caption" in again.stderr


def test_jsonl_refuses_a_file_that_is_not_captioners_and_leaves_it(synthetic_coco, model_dir,
                                                                  tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"a": 1}\nmy notes\n')
    result = run("caption.py", os.path.join(synthetic_coco, "test2017"), "--model", model_dir,
                 "--jsonl", notes)
    assert_one_line_error(result, "not a file of captioner's answers (line 1")
    assert notes.read_text() == '{"a": 1}\nmy notes\n'


@pytest.mark.slow  # two models loaded, three searches compiled, end to end
def test_an_ensemble_of_the_model_with_itself_captions_as_the_model_and_samples_list_n(
        synthetic_coco, model_dir, tmp_path):
    image = os.path.join(synthetic_coco, "test2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "test2017")))[0])
    single = run("caption.py", image, "--model", model_dir, "--json", "--beam", 2)
    twice = run("caption.py", image, "--model", model_dir, "--model", model_dir, "--json",
                "--beam", 2)
    assert single.returncode == twice.returncode == 0, twice.stderr
    assert json.loads(single.stdout)[0]["caption"] == json.loads(twice.stdout)[0]["caption"]
    drawn = run("caption.py", image, "--model", model_dir, "--json", "--samples", 3,
                "--top-p", 0.9, "--seed", 5, "--no-repeat-ngram", 3, "--attention-dir", tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    item, = json.loads(drawn.stdout)
    assert len(item["n_best"]) == 3 and all(os.path.isfile(e["attention_png"])
                                            for e in item["n_best"])
    assert_one_line_error(run("caption.py", image, "--model", model_dir, "--ban", "zebrra"),
                          "'zebrra' not in the model's vocabulary")
