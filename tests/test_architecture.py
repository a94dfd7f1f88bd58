"""The house: floors that import downwards only, no import circle, command lines only under
``captioner/commands``. What a module imports is read from its source, imports inside
functions included (a function-level import is still an arrow)."""

import ast
import os

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "captioner")
# Each part's floor: a module imports only from its own floor or below.
FLOORS = [
    ("captioner.errors", "captioner.io", "captioner.geometry", "captioner.text",
     "captioner.config", "captioner.version", "captioner.results",
     "captioner.folders", "captioner.batch_jobs"),            # the ground floor
    ("captioner.metrics",),                                  # scores of words and maps
    ("captioner.data",),                                     # files, vocabulary, batches
    ("captioner.layers",),                                   # Keras layers
    ("captioner.search",),                                   # searches over a step function
    ("captioner.models",),                                   # Keras models and losses
    ("captioner.domain",),                                   # what a model's images are like
    ("captioner.saving",),                                   # the model folder
    ("captioner.render", "captioner.evaluation", "captioner.export",
     "captioner.viewer"),                                    # running and showing a model
    ("captioner.tasks",),                                    # the task objects
    ("captioner.training", "captioner.serve"),               # the epoch loop; the server
    ("captioner.cli",),                                      # what command lines share
    ("captioner.commands",),                                 # the command lines
    ("captioner",),                                          # the public API (lazy names)
]


def floor_of(module):
    """The floor of a captioner module: its longest matching part's."""
    best = None
    for level, parts in enumerate(FLOORS):
        for part in parts:
            if module == part or module.startswith(part + "."):
                if best is None or len(part) > len(best[1]):
                    best = (level, part)
    assert best is not None, f"{module} has no floor: add its part to FLOORS"
    return best[0]


def imports_of(path, module):
    """The captioner modules ``path`` imports (``from captioner import io`` -> captioner.io)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base
                     for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] == "captioner")


def _is_module(name):
    relative = os.path.join(ROOT, *name.split("."))
    return os.path.isfile(relative + ".py") or os.path.isdir(relative)


def modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield relative.removesuffix(".__init__"), path


def graph():
    return {module: sorted(set(imports_of(path, module)) - {module})
            for module, path in modules()}


def test_no_module_imports_a_floor_above_its_own():
    arrows = graph()
    assert len(arrows) > 40
    up = [(module, imported) for module, targets in arrows.items() for imported in targets
          if module != "captioner" and floor_of(imported) > floor_of(module)]
    assert up == []


def test_no_import_circle():
    arrows = graph()
    known = set(arrows)

    def target(name):  # captioner.data.vocab.Vocabulary -> captioner.data.vocab
        while name not in known and "." in name:
            name = name.rpartition(".")[0]
        return name
    edges = {module: {target(t) for t in targets} - {module} for module, targets in
             arrows.items()}
    circles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(edges.get(module, ())):
            if imported == "captioner":
                continue  # the package's lazy names import nothing at import time
            if state.get(imported) == "open":
                circles.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"
    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_command_lines_live_only_under_commands():
    for module, path in modules():
        if module.startswith(("captioner.commands", "captioner.cli", "captioner.__main__")):
            continue
        source = open(path, encoding="utf-8").read()
        assert "argparse" not in source and "__main__" not in source, module
        assert "def main(" not in source, module


def test_the_command_lines_never_read_a_model_folder_themselves():
    for script in ("caption.py", "train.py", "captioner/commands/caption.py",
                   "captioner/commands/train.py"):
        source = open(os.path.join(ROOT, script), encoding="utf-8").read()
        assert "config.json" not in source and "read_json" not in source, script


def test_pip_install_ships_every_package():
    """pyproject.toml lists its packages by name: a new folder of captioner/ must be there."""
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        listed = set(tomllib.load(handle)["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(folder, ROOT).replace(os.sep, ".")
             for folder, _, files in os.walk(os.path.join(ROOT, "captioner"))
             if "__init__.py" in files}
    assert found <= listed, sorted(found - listed)
