"""The command-line front ends (``caption.py`` / ``train.py`` in the repository, the
``caption`` / ``train`` commands once installed): parse, call the library, print."""

from captioner.folders import bundled_model_folder as default_model_dir  # noqa: F401
