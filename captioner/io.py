"""Atomic file writes and JSON reading with precise errors.

Every file the project writes goes through :func:`atomic_path`: the content lands in a
temporary file in the same folder and is renamed over the target only once it is complete,
so an interrupted run never leaves a half-written checkpoint, JSON or PNG behind.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile

from captioner.errors import DataError


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path beside ``path``; renames it over ``path`` on success.

    ``suffix`` defaults to the target's extension, for writers that infer the format
    from the name (Keras wants ``.keras``, matplotlib ``.png``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".partial-", suffix=suffix or ".tmp", dir=folder)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def atomic_folder(path):
    """Yields a temporary folder beside ``path``; renames it to ``path`` on success (an
    empty folder there is replaced; the caller refuses a non-empty one beforehand)."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".partial-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes 0700; give the usual permissions
    try:
        yield temporary
        if os.path.isdir(path):
            os.rmdir(path)  # fails on a folder that is not empty: nothing is lost
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def write_text(path, text):
    """Writes ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def write_json(path, data, indent=2):
    """Writes ``data`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def read_json(path, what="JSON file"):
    """Reads a JSON file, raising :class:`DataError` that names the file and the fault."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{what} is a folder, not a file: {path}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{what} is not UTF-8 text: {path} ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise DataError(
            f"{what} is not valid JSON: {path}, line {error.lineno} column {error.colno}: "
            f"{error.msg}") from None


@contextlib.contextmanager
def silenced_stderr():
    """Points file descriptor 2 at /dev/null for the duration: for child processes and C++
    libraries that write progress chatter there (Python exceptions still propagate)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
