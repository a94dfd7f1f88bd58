"""The version of captioner (pyproject.toml reads it; ``captioner --version`` prints it)."""

__version__ = "0.4.0"
