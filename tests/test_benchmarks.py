"""The benchmarks as the docs cite them: every cited command names a module that runs and
takes the options shown, and every recipe makes the configurations it says."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from benchmarks import experiment
from tests.conftest import ROOT

CITED = re.compile(r"python -m ((?:benchmarks|tests\.harness)\.[a-z_]+)((?: [^`\n]*)?)")


def cited_commands():
    """{module: the options the docs show with it}."""
    found = {}
    for path in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True) + \
            [os.path.join(ROOT, "README.md")]:
        with open(path, encoding="utf-8") as handle:
            for module, rest in CITED.findall(handle.read()):
                found.setdefault(module, set()).update(re.findall(r"--[a-z][a-z-]*", rest))
    return found


def test_every_recipe_makes_the_configurations_its_members_say():
    for path in sorted(glob.glob(os.path.join(ROOT, "benchmarks", "recipes", "*.json"))):
        with open(path, encoding="utf-8") as handle:
            recipe = json.load(handle)
        assert recipe["members"] and recipe["title"], path
        for name, own in recipe["members"].items():
            model, train = experiment.configs({**recipe["options"], **own})
            for key, value in own.items():  # each member's own option reached its section
                sections = [model.encoder, model.decoder, model.loss, *(
                    getattr(train, section) for section in train.sections())]
                assert any(getattr(section, key, None) == value for section in sections) \
                    or getattr(train, key, None) == value, (path, name, key)
    with pytest.raises(SystemExit, match="not an option of the lstm decoder"):
        experiment.configs({"model_width": 128})  # the Transformer's


@pytest.mark.slow  # a process per cited module
def test_every_benchmark_the_docs_cite_runs_with_the_options_shown():
    cited = cited_commands()
    assert {"benchmarks.soft_vs_hard", "benchmarks.default_path",
            "tests.harness.kill_resume"} <= set(cited)
    for module, options in sorted(cited.items()):
        result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (module, result.stderr[-2000:])
        missing = {option for option in options if option not in result.stdout}
        assert not missing, (module, missing)
