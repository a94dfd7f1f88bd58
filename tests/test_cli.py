"""The command-line front ends: their ``main`` run in this process as the real commands run
it (``captioner.cli.run``: exit statuses, one-line errors, captured output), and a few smoke
tests of the real processes (``python caption.py``, ``python train.py``).

The training runs are repeated on JAX (``backend``): they train, save and caption end to
end. The others test the front end itself, which has no backend-specific code (decoding on
either backend is tested in-process in tests/models)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.helpers import run_command


def run(script, *args):
    """``script``'s command line, in this process."""
    from captioner.commands import caption, train
    return run_command({"caption.py": caption.main, "train.py": train.main}[script], *args)


def run_process(script, *args, **options):
    """``python script args...`` as a user runs it: a real process."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, **options)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model, vocabulary):
    from tests.helpers import save_model
    folder = tmp_path_factory.mktemp("model")
    save_model(str(folder), tiny_model, vocabulary)
    return folder


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


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


def test_caption_scores_an_annotated_split_and_says_which_images_it_skipped(
        synthetic_coco, model_dir, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(synthetic_coco, data)
    images = sorted((data / "test2017").iterdir())
    images[1].write_bytes(images[1].read_bytes()[:150])  # truncated
    images[4].unlink()  # named by the annotations, not there
    result = run("caption.py", "--coco", data, "--split", "test", "--model", model_dir,
                 "--beam", 2, "--out", tmp_path, "--json")
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
    results = json.loads((tmp_path / "captions_test_beam2.json").read_text())
    assert len(results) == 4 and set(results[0]) == {"image_id", "caption"}
    assert json.loads((tmp_path / "scores_test_beam2.json").read_text()) == report


def test_one_unreadable_input_never_costs_the_others(synthetic_coco, model_dir, tmp_path):
    import shutil
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
    assert sorted(os.listdir(tmp_path / "maps")) == sorted(
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
    assert os.listdir(tmp_path / "maps") == []  # no half-written PNG, no temporary file


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


@pytest.mark.backend
@pytest.mark.slow  # two training runs end to end (train, resume)
def test_train_writes_a_model_that_caption_loads(synthetic_coco, tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(synthetic_coco, data)
    tiny = ["--image-size", 32, "--width", 8, "--lstm-units", 32, "--embedding-dim", 16,
            "--attention-units", 16, "--batch-size", 8, "--validation-images", 4,
            "--max-words", 8]
    result = run("train.py", "--coco", data, "--out", out, "--epochs", 1, *tiny)
    assert result.returncode == 0, result.stderr
    for name in ("model.keras", "vocab.json", "config.json", "MODEL_CARD.md", "metrics.json",
                 "training_curves.png", "checkpoint/latest.json",
                 "checkpoint/epoch-0001/training.keras", "checkpoint/epoch-0001/state.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"BLEU-4", "images"}
    image = os.path.join(synthetic_coco, "val2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "val2017")))[0])
    assert run("caption.py", image, "--model", out).returncode == 0
    # --resume DIR alone continues the run from its own command line (from another
    # folder: the recorded paths are absolute); only a resumable option may be given
    assert_one_line_error(run("train.py", "--resume", out, "--lstm-units", 8, "--seed", 3),
                          "keeps the run's own --lstm-units, --seed", "drop them")
    assert_one_line_error(run("train.py", "--resume", tmp_path / "nowhere"), "no such folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("train.py", "--resume", tmp_path / "empty"),
                          "holds no checkpoint", "--resume")
    # the data moved: one line naming where they were and the option for where they are
    moved = tmp_path / "moved"
    data.rename(moved)
    assert_one_line_error(run("train.py", "--resume", out), f"read from {data}, which is not "
                          "there any more", "give --coco with its new place")
    elsewhere = os.getcwd()
    try:
        os.chdir(tmp_path / "empty")
        resumed = run("train.py", "--resume", out, "--epochs", 2, "--coco", moved,
                      "--no-progress")
    finally:
        os.chdir(elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    state = json.loads((out / "checkpoint" / "epoch-0002" / "state.json").read_text())
    assert state["record"]["data"]["coco"] == str(moved)
    assert "resuming" in resumed.stderr and "from epoch 1 of 2" in resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["decoder"]["lstm_units"] == 32  # the run's own options
    # the old way, every option again with --out and --resume, still works, and one left
    # out is named with its values and the way to resume
    refused = run("train.py", "--coco", moved, "--out", out, "--resume",
                  "--epochs", 3, *tiny[:-2])
    assert_one_line_error(refused, "cannot change max_words (8 -> 40)",
                          f"captioner train --resume {out}")
    # a run from before the record kept its command line, which --resume DIR parses again
    path = out / "checkpoint" / "epoch-0002" / "state.json"
    state = json.loads(path.read_text())
    del state["record"]
    state["invocation"] = {"cwd": str(tmp_path), "argv": ["--coco", "moved", *map(str, tiny)]}
    path.write_text(json.dumps(state))
    resumed = run("train.py", "--resume", out, "--epochs", 3, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "from epoch 2 of 3" in resumed.stderr


@pytest.mark.slow
def test_train_hard_attention_with_another_score_and_caption_with_it(synthetic_coco, tmp_path):
    out = tmp_path / "hard"
    tiny = ["--image-size", 32, "--width", 8, "--lstm-units", 32, "--embedding-dim", 16,
            "--attention-units", 16, "--batch-size", 8, "--validation-images", 4,
            "--max-words", 8]
    result = run("train.py", "--coco", synthetic_coco, "--out", out, "--epochs", 1,
                 "--attention", "hard", "--hard-inference", "argmax", "--score", "local",
                 "--window", 2, *tiny)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["decoder"]["attention"] == "hard" and config["loss"]["reward_weight"] == 0.1
    assert config["decoder"]["score"] == "local" and config["decoder"]["window"] == 2
    image = os.path.join(synthetic_coco, "val2017", sorted(os.listdir(
        os.path.join(synthetic_coco, "val2017")))[0])
    captioned = run("caption.py", image, "--model", out, "--attention-dir", tmp_path / "maps",
                    "--json")
    assert captioned.returncode == 0, captioned.stderr
    assert os.path.isfile(json.loads(captioned.stdout)[0]["attention_png"])


def test_train_user_mistakes_exit_2_with_one_line(tmp_path, synthetic_coco):
    (tmp_path / "file").write_text("a file")
    assert_one_line_error(run("train.py", "--coco", synthetic_coco, "--out", tmp_path / "file"),
                          "--out", "is a file, not a folder")
    assert_one_line_error(run("train.py", "--coco", synthetic_coco, "--out",
                              tmp_path / "file" / "run"), "--out", "cannot be made")
    assert_one_line_error(run("train.py", "--coco", synthetic_coco, "--out", tmp_path / "d",
                              "--distribute", "--devices", 3), "--devices 3: 1 device(s) visible")
    assert_one_line_error(run("train.py", "--coco", tmp_path, "--out", tmp_path / "o",
                              "--score", "multihead", "--heads", 3), "heads must divide")
    assert_one_line_error(run("train.py", "--coco", tmp_path / "nowhere", "--out", tmp_path / "o"),
                          "not found")
    (tmp_path / "split.json").write_text("{oops")
    assert_one_line_error(run("train.py", "--karpathy", tmp_path / "split.json", "--images",
                              tmp_path, "--out", tmp_path / "o"), "not valid JSON")


@pytest.mark.slow
def test_an_unreadable_training_image_is_refused_up_front_or_skipped_and_counted(
        synthetic_coco, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(synthetic_coco, data)
    broken = sorted((data / "train2017").iterdir())[10]
    broken.write_bytes(broken.read_bytes()[:300])  # truncated in the middle of the split
    tiny = ["--image-size", 32, "--width", 8, "--lstm-units", 32, "--embedding-dim", 16,
            "--attention-units", 16, "--batch-size", 8, "--validation-images", 2,
            "--max-words", 8, "--epochs", 1, "--no-progress"]
    refused = run("train.py", "--coco", data, "--out", tmp_path / "refused", "--bad-images",
                  "error", *tiny)
    assert_one_line_error(refused, "1 training image(s) cannot be read", broken.name)
    assert not (tmp_path / "refused" / "checkpoint").exists()
    skipped = run("train.py", "--coco", data, "--out", tmp_path / "skipped", *tiny)
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stderr.count(f"skipping an unreadable training image: Cannot decode "
                                f"image {broken}") == 1
    listed = json.loads((tmp_path / "skipped" / "skipped_images.json").read_text())
    assert list(listed["training"]) == [str(broken)]
    assert listed["training"][str(broken)]["file"][0] == broken.stat().st_size
    history = json.loads((tmp_path / "skipped" / "metrics.json").read_text())["history"]
    assert history[0]["skipped_images"] == 1
    # resumed: named from the list before the first step, and not read again
    resumed = run("train.py", "--coco", data, "--out", tmp_path / "skipped", "--resume",
                  *tiny[:-3], "--epochs", 2, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    said = resumed.stderr.index("skipping 1 of 24 training images that could not be read")
    assert said < resumed.stderr.index("epoch 2/2")
    assert "skipping an unreadable training image" not in resumed.stderr
    history = json.loads((tmp_path / "skipped" / "metrics.json").read_text())["history"]
    assert [row["skipped_images"] for row in history] == [1, 1]


@pytest.mark.backend
def test_train_a_ram_and_classify_with_it(tmp_path):
    out = tmp_path / "ram"
    result = run("train.py", "--task", "ram", "--digits", "cluttered", "--digit-source",
                 "sklearn", "--canvas", 32,
                 "--glimpses", 2, "--patch", 4, "--scales", 2, "--epochs", 1,
                 "--batch-size", 128, "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "test error" in result.stderr
    for name in ("model.keras", "config.json", "MODEL_CARD.md", "metrics.json",
                 "training_curves.png", "checkpoint/latest.json",
                 "checkpoint/epoch-0001/training.keras", "checkpoint/epoch-0001/state.json"):
        assert (out / name).is_file(), name
    canvas = np.zeros((32, 32), np.uint8)
    canvas[5:20, 8:12] = 255
    Image.fromarray(canvas).save(tmp_path / "one.png")
    classified = run("caption.py", tmp_path / "one.png", "--model", out, "--json",
                     "--attention-dir", tmp_path / "glimpses")
    assert classified.returncode == 0, classified.stderr
    answer = json.loads(classified.stdout)[0]
    assert answer["label"] in [str(k) for k in range(10)] and len(answer["glimpses"]) == 2
    assert os.path.isfile(answer["glimpse_png"])
    assert_one_line_error(run("caption.py", "--coco", tmp_path, "--model", out),
                          "Recurrent Attention Model")
    assert_one_line_error(run("train.py", "--task", "ram", "--image-folder", tmp_path / "nowhere",
                              "--out", tmp_path / "o"), "Image folder not found")


def test_train_default_epochs_depend_on_the_task_alike_for_the_api_and_the_command_line():
    import train
    from captioner.commands import train_ram
    from captioner.commands.training import train_options
    from captioner.config import RAM_EPOCHS, TrainConfig
    from captioner.training.run import train_config_for

    def epochs(command, task, *argv):
        return train_config_for(task, **train_options(command.parse_args(list(argv)))).run.epochs
    assert epochs(train_ram, "ram", "--digits", "translated", "--out", "o") == RAM_EPOCHS
    assert epochs(train, "caption", "--coco", "c", "--out", "o") == TrainConfig().run.epochs
    assert epochs(train_ram, "ram", "--digits", "translated", "--out", "o", "--epochs", "3") == 3
    assert train_config_for("ram").run.epochs == RAM_EPOCHS != TrainConfig().run.epochs


def test_scoring_a_split_writes_its_heat_maps_and_its_report_together(synthetic_coco,
                                                                      model_dir, tmp_path):
    result = run("caption.py", "--coco", synthetic_coco, "--split", "test", "--model",
                 model_dir, "--out", tmp_path / "scores", "--tokenizer", "captioner",
                 "--attention-dir", tmp_path / "maps", "--html", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    images = sorted(os.listdir(os.path.join(synthetic_coco, "test2017")))
    assert sorted(os.listdir(tmp_path / "maps")) == sorted(
        f"{os.path.splitext(name)[0]}_attention.png" for name in images)
    manifest = (tmp_path / "report" / "data" / "manifest.js").read_text()
    manifest = json.loads(manifest[manifest.index("(") + 1:manifest.rindex(")")])
    assert len(manifest["items"]) == len(images)
