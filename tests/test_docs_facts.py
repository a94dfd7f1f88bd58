"""The manual states each repeated figure on one page (the others link to it), agrees with
the code where a page states what the code holds, and speaks to users: none of the words
of how the project is made."""

import glob
import os
import re

import pytest

from tests.conftest import ROOT

PAGES = sorted({os.path.relpath(path, ROOT) for pattern in (
    "README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/**/*.md", "assets/model/*.md")
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True)})


def text(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
        return handle.read()


# a figure -> the one page that states it (every other page links there)
FIGURES = {
    r"\b24 GB\b": "docs/guides/train-coco.md",           # COCO's float16 feature cache
    r"about 3 hours": "docs/guides/train-coco.md",       # building it on 2 CPU cores
    r"\b33 minutes\b": "docs/guides/train-coco.md",      # an epoch on cached features
    r"TFLOP/s": "docs/benchmarks/performance.md",        # a GPU's bf16 peak
    r"\b12\.3 min\b": "docs/research/default-model.md",  # the bundled model's training
    r"\b5\.483\b": "docs/research/default-model.md",     # its greedy CIDEr-D
    r"\b1,504 MB\b": "docs/benchmarks/performance.md",   # the default command's peak RSS
    r"\b4\.97\b": "docs/benchmarks/performance.md",       # its steps per second
    r"\b1\.25x\b": "docs/benchmarks/performance.md",      # bfloat16's gain on this CPU
}

# what the project's own making speaks of, and a user does not need
WORKPLACE = re.compile(r"\b(lent|goals?|next steps?|no GPU was available|this session|"
                       r"issue #?\d+)\b", re.IGNORECASE)


@pytest.mark.parametrize("figure", FIGURES)
def test_each_figure_is_stated_on_one_page(figure):
    found = [page for page in PAGES if re.search(figure, text(page))]
    assert found == [FIGURES[figure]], figure


def test_the_pages_speak_to_users():
    said = [(page, line.strip()) for page in PAGES for line in text(page).splitlines()
            if WORKPLACE.search(line)]
    assert said == []


def test_pages_that_state_what_the_code_holds_agree_with_it():
    from captioner.data.synthetic import IMAGE_SIZE
    data = text("docs/guides/data.md")
    assert re.search(rf"captioner synth --out data/synthetic .*, {IMAGE_SIZE} px", data)
    assert not re.search(r"\b790 TFLOP", text("docs/benchmarks/performance.md"))
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as handle:
        python = re.search(r'requires-python = ">=(3\.\d+)"', handle.read()).group(1)
    assert f"Python {python} or newer" in text("README.md")
    assert f"Python {python} or newer" in text("docs/guides/install.md")
    from captioner.models.encoder import imagenet_file
    install = text("docs/guides/install.md")
    for backbone, size in (("resnet50", 224), ("inception_v3", 299), ("mobilenet_v2", 224),
                           ("efficientnet_b0", 224)):
        assert f"`{imagenet_file(backbone, size)}`" in install, backbone


def commands():
    """Every ``captioner ...`` line of the pages' code blocks (continuations joined), as
    (page, words); a line with a placeholder (``...``, ``URL``) left out."""
    import shlex
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text(page), re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"^(\S+=\S+ )+", "", line.split(" #")[0].strip())
                for part in re.split(r"&&|;|\|", line):
                    try:
                        words = shlex.split(part.strip())
                    except ValueError:  # a quote split by the separators above: not a command
                        continue
                    cut = [i for i, w in enumerate(words) if re.match(r"^\d?[<>]", w)]
                    words = words[:cut[0]] if cut else words  # no redirections
                    if words and words[0].endswith("captioner") and len(words) > 1 \
                            and "..." not in part:
                        found.append((page, words[1:]))
    return found


def test_every_command_of_the_manual_parses():
    """Each documented command line is accepted by the command's own parser (the README's
    jobs, the guides, the tutorial), so a reader who copies one gets past the options."""
    import importlib

    from captioner.commands.main import COMMANDS
    lines = commands()
    assert len(lines) > 40
    refused = []
    for page, words in lines:
        name, options = words[0], words[1:]
        if name.startswith("-"):  # captioner --help, --version
            continue
        assert name in COMMANDS, (page, words)
        module = importlib.import_module(COMMANDS[name][0])
        try:
            module.build_parser().parse_args(options)
        except SystemExit as exit:
            if exit.code:
                refused.append((page, " ".join(words)))
    assert refused == []
