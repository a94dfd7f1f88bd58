"""``captioner train`` and ``captioner train-ram`` (and ``train.py``): runs end to end
(train, resume from the record, a moved data folder, a run from before the record),
the help, and every mistake in one line.

The training runs are repeated on JAX (``backend``): they train, save and caption end to
end."""

import importlib
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.commands.helpers import assert_one_line_error, run


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
    del state["record"], state["digest"]  # nor had it a digest
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
@pytest.mark.slow  # end to end: train then classify
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


def help_blocks(text):
    """{group title: its lines} of a --help text."""
    return dict(re.findall(r"\n([^ \n][^\n]*):\n((?:  .*\n|\n(?=  ))+)", text))


def test_train_help_is_a_screenful_grouped_by_config_section_with_two_examples(monkeypatch):
    import dataclasses

    from captioner.cli import is_option, option_flag
    from captioner.config import DECODERS, EncoderConfig, LossConfig, RAMConfig, TrainConfig
    monkeypatch.setenv("COLUMNS", "80")
    train = importlib.import_module("captioner.commands.train")
    text = train.build_parser().format_help()
    assert len(text.splitlines()) <= 150 and len(re.findall(r"^  --", text, re.M)) <= 60
    every = train.build_parser(every=True).format_help()
    blocks, all_blocks = help_blocks(text), help_blocks(every)
    sections = (EncoderConfig, *DECODERS.values(), LossConfig, TrainConfig,
                *TrainConfig.sections().values())
    for section in sections:  # each section's options in its own group; advanced: --help-all
        for field in filter(is_option, dataclasses.fields(section)):
            flag = option_flag(section, field.name)
            advanced = field.metadata.get("advanced", False)
            assert (flag in blocks.get(section.title, "")) != advanced, (section, flag)
            assert flag in all_blocks[section.title], (section, flag)
    assert "--glimpses" not in every  # the RAM's options are train-ram's
    ram = importlib.import_module("captioner.commands.train_ram").build_parser().format_help()
    assert option_flag(RAMConfig, "glimpses") in help_blocks(ram)[RAMConfig.title]
    for page in (text, ram):  # two examples at the end, each a command that runs
        examples = page.split("examples:\n")[1].strip().splitlines()
        assert len(examples) == 2 and all(line.lstrip().startswith("captioner ")
                                          for line in examples)
