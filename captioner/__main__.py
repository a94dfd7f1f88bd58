"""``python -m captioner COMMAND ...``: the ``captioner`` command (captioner.commands.main)."""

from captioner.commands.main import entry

entry()
