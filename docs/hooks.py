"""mkdocs hook: ``<!-- help: NAME -->`` in a page becomes ``captioner NAME --help`` as the
code prints it, so the command reference is generated from the parsers themselves."""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"<!-- help:\s*([a-z-]*)\s*-->")


def command_help(name):
    """The --help text of ``captioner NAME`` (``captioner`` itself for an empty NAME), at
    a fixed width."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    os.environ["COLUMNS"] = "80"
    import importlib

    from captioner.commands.main import COMMANDS, build_parser
    if not name:
        return build_parser().format_help()
    module = importlib.import_module(COMMANDS[name][0])
    return module.build_parser(f"captioner {name}").format_help()


def on_page_markdown(markdown, page, config, files):
    return MARKER.sub(lambda found: f"```text\n{command_help(found.group(1)).rstrip()}\n```",
                      markdown)
