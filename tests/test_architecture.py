"""The package's layers import downwards only: what a module imports, read from its source."""

import ast
import os

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "captioner")
# What each part may not import: nothing above it.
ABOVE = {
    "captioner.layers": ("captioner.models", "captioner.training", "captioner.saving",
                         "captioner.evaluation", "captioner.inference", "captioner.commands",
                         "captioner.cli", "captioner.render", "captioner.metrics"),
    "captioner.models": ("captioner.training", "captioner.saving", "captioner.evaluation",
                         "captioner.inference", "captioner.commands", "captioner.cli",
                         "captioner.render", "captioner.metrics"),
    "captioner.data": ("captioner.models", "captioner.layers", "captioner.training",
                       "captioner.saving", "captioner.evaluation", "captioner.commands"),
    "captioner.saving": ("captioner.training", "captioner.evaluation", "captioner.commands",
                         "captioner.inference"),
    "captioner.evaluation": ("captioner.training", "captioner.commands", "captioner.models",
                             "captioner.layers"),
    "captioner.training": ("captioner.commands", "captioner.layers"),
    "captioner.commands": ("captioner.models", "captioner.layers"),
}


def imports_of(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield relative.removesuffix(".__init__"), path


def test_no_module_imports_a_layer_above_its_own():
    found = list(modules())
    assert len(found) > 30
    wrong = [(module, imported) for module, path in found for part, above in ABOVE.items()
             if module == part or module.startswith(part + ".")
             for imported in imports_of(path) if imported.startswith(above)]
    assert wrong == []


def test_the_command_lines_never_read_a_model_folder_themselves():
    for script in ("caption.py", "train.py", "captioner/commands/caption.py",
                   "captioner/commands/train.py"):
        source = open(os.path.join(ROOT, script), encoding="utf-8").read()
        assert "config.json" not in source and "read_json" not in source, script
