"""The ``captioner`` command: its subcommands, their help (complete, grouped, without Keras),
every output path that cannot be used (one line, exit 2), and ``evaluate`` on COCO and
Karpathy splits."""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.helpers import run_command


def captioner(*args):
    from captioner.commands.main import main
    return run_command(main, *args)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model, vocabulary):
    from tests.helpers import save_model
    folder = tmp_path_factory.mktemp("model")
    save_model(str(folder), tiny_model, vocabulary)
    return str(folder)


def parsers():
    """(name, parser) of every subcommand."""
    import importlib

    from captioner.commands.main import COMMANDS
    for name, (module, _) in COMMANDS.items():
        yield name, importlib.import_module(module).build_parser(f"captioner {name}")


def test_help_and_version_come_without_importing_keras():
    script = (
        "import sys\n"
        "from captioner.commands.main import COMMANDS, main\n"
        "for argv in (['--help'], ['--version'], *([c, '--help'] for c in COMMANDS)):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (argv, exit.code)\n"
        "heavy = sorted(m for m in ('keras', 'tensorflow', 'jax', 'matplotlib')"
        " if m in sys.modules)\n"
        "print('IMPORTED', heavy)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stdout
    from captioner.commands.main import COMMANDS
    for name in COMMANDS:  # the top-level help lists every subcommand
        assert f"\n  {name} " in result.stdout
    from captioner.version import __version__
    assert f"captioner {__version__}\n" in result.stdout


def internal_names():
    """The names of the code behind the options: every config field and option dest."""
    import dataclasses

    from captioner import config
    names = {field.name for value in vars(config).values()
             if dataclasses.is_dataclass(value) for field in dataclasses.fields(value)}
    return names | {action.dest for _, parser in parsers() for action in parser._actions}


def test_every_option_has_help_without_internal_names():
    internal = {name for name in internal_names() if "_" in name}
    for name, parser in parsers():
        choices = {str(c) for action in parser._actions for c in (action.choices or ())}
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = action.option_strings[-1]
            assert action.help and action.help.strip(), f"captioner {name} {flag} has no help"
            text = re.sub(r"\S+\.(json|png|keras|md|html)\b", "", action.help)
            assert "README" not in text, (name, flag)
            assert not re.search(r"\b[A-Z]+_[A-Z_]+\b", text), (name, flag, text)  # constants
            snake = set(re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b", text)) - choices
            assert not snake & internal, (name, flag, snake & internal)  # field names


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


def unusable_outputs(tmp_path):
    """(what, path): a file where a folder is needed, a path under a file, a folder this
    process may not write in."""
    (tmp_path / "file").write_text("a file")
    cases = [("is a file, not a folder", tmp_path / "file"),
             ("cannot be made", tmp_path / "file" / "under"),
             ("cannot be written", "/sys/captioner-out")]  # sysfs refuses new files, root too
    if os.geteuid() != 0:  # permissions bind everyone but root
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        cases.append(("cannot be written", locked / "out"))
    return cases


def test_every_unusable_output_path_is_one_line_and_exit_2(tmp_path, synthetic_coco,
                                                           model_dir):
    image = os.path.join(synthetic_coco, "test2017",
                         sorted(os.listdir(os.path.join(synthetic_coco, "test2017")))[0])
    for what, path in unusable_outputs(tmp_path):
        for option, command in (
                ("--attention-dir", ["caption", image, "--model", model_dir]),
                ("--html", ["caption", image, "--model", model_dir]),
                ("--out", ["evaluate", "--coco", synthetic_coco, "--model", model_dir]),
                ("--html", ["evaluate", "--coco", synthetic_coco, "--model", model_dir]),
                ("--attention-dir", ["evaluate", "--coco", synthetic_coco, "--model",
                                     model_dir]),
                ("--out", ["train", "--coco", synthetic_coco]),
                ("--out", ["export", "--model", model_dir]),
                ("--out", ["synth"]),
                ("--model", ["domain", "--coco", synthetic_coco])):
            assert_one_line_error(captioner(*command, option, path), option, str(path), what)
    assert (tmp_path / "file").read_text() == "a file"
    assert [name for name in os.listdir(tmp_path) if name.startswith(".captioner")] == []


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
    for metric in ("BLEU-4", "CIDEr", "images"):
        assert scores[0][metric] == pytest.approx(scores[1][metric]), metric
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
    assert_one_line_error(captioner("evaluate", "--coco", coco2017, "--model", model_dir,
                                    "--out", tmp_path / "o"),
                          "the test2017 split", "has no captions", "score val2017")
    assert_one_line_error(captioner("evaluate", "--model", model_dir), "--coco DIR")
