"""The ``captioner`` command: its subcommands, their help (complete, without Keras), and
every output path that cannot be used (one line, exit 2)."""

import importlib
import os
import re
import subprocess
import sys

from tests.commands.helpers import assert_one_line_error, captioner
from tests.conftest import ROOT


def parsers():
    """(name, parser) of every subcommand."""
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
