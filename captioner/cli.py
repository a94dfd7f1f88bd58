"""What the command-line front ends share: quiet start-up and one-line errors.

A user mistake (a :class:`CaptionerError`, or an option argparse rejects) prints one line
``error: ...`` on standard error and exits with code 2; anything else is a bug and keeps its
traceback (exit code 1).
"""

import argparse
import os
import sys


def quiet_backend_logs():
    """Silences TensorFlow's C++ start-up chatter; call before keras is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def import_keras_quietly():
    """Imports keras with file descriptor 2 closed off: TensorFlow's C++ start-up lines
    (absl, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL and would bury the program's own
    messages. Python-level errors still surface, as exceptions."""
    from captioner.io import silenced_stderr
    quiet_backend_logs()
    with silenced_stderr():
        import keras  # noqa: F401


def run(main, argv=None):
    """Calls ``main(argv)``; turns the project's errors into one line and exit code 2."""
    from captioner.errors import CaptionerError
    try:
        code = main(argv)
    except CaptionerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return code or 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line too: ``error: ... (see --help)``, exit 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
