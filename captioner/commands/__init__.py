"""The command-line front ends (``caption.py`` / ``train.py`` in the repository, the
``caption`` / ``train`` commands once installed): parse, call the library, print."""

import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_model_dir():
    """The bundled default model: inside the installed package, or the repository's
    ``assets/model``."""
    installed = os.path.join(_PACKAGE, "assets", "model")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(_PACKAGE), "assets", "model")
