"""What the command tests share: a command run in this process as the real one runs
(``captioner.cli.run``: exit statuses, one-line errors, captured output), a real process,
and the check of a one-line error."""

import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.helpers import run_command


def run(script, *args):
    """``script``'s command line (caption.py, train.py), in this process."""
    from captioner.commands import caption, train
    return run_command({"caption.py": caption.main, "train.py": train.main}[script], *args)


def captioner(*args):
    """``captioner ARGS``, in this process."""
    from captioner.commands.main import main
    return run_command(main, *args)


def run_process(script, *args, **options):
    """``python script args...`` as a user runs it: a real process."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, **options)


def assert_one_line_error(result, *fragments):
    """Exit status 2 and one line, ``error: ...``, holding each of ``fragments``."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
