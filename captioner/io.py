"""Atomic file writes and JSON reading with precise errors.

Every file the project writes goes through :func:`atomic_path`: the content lands in a
temporary file in the same folder and is renamed over the target only once it is complete,
so an interrupted run never leaves a half-written checkpoint, JSON or PNG behind. A write
the system refuses (no space left, no permission, a read-only or size-limited file system)
removes the temporary file and raises :class:`OutputError`, one line for the user; the
target keeps its previous content. A process killed mid-write leaves only a temporary file
(``.NAME.partial-*``), which :func:`remove_partials` clears on the next run.
"""

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile

from captioner.errors import DataError, OutputError

PARTIAL = ".partial-"  # in the name of every temporary file or folder of a write
# what the system answers a write it refuses: the user can fix these (space, rights, mount)
WRITE_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                  errno.EFBIG, errno.EIO)


def write_failure(error, path):
    """The :class:`OutputError` of an OSError raised writing ``path``, or None for an error
    that is not a refused write (a bug, a missing input: left as it is)."""
    for cause in (error, error.__cause__, error.__context__):
        if isinstance(cause, OSError) and cause.errno in WRITE_FAILURES:
            reason = cause.strerror or os.strerror(cause.errno)
            return OutputError(f"Cannot write {path}: {reason}")
    return None


@contextlib.contextmanager
def refused_writes(path):
    """Turns a refused write (``WRITE_FAILURES``) inside the block into an OutputError
    naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except Exception as error:
        failure = write_failure(error, path)
        if failure is None:
            raise
        raise failure from None


def check_output_folder(path, option):
    """Raises OutputError (one line, naming ``option``) unless ``path`` is a folder that
    can be written or can become one: an existing file there, a file where one of its
    parents should be, or a folder this process may not write in (no permission, a
    read-only file system: tried with a file made and removed at once) is refused before
    any work is done."""
    import tempfile
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{option} {path} is a file, not a folder")
    parent = path
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise OutputError(f"{option} {path} cannot be made: {parent} is a file, not a folder")
    if parent:
        try:
            handle, probe = tempfile.mkstemp(dir=parent, prefix=".captioner-probe-")
        except OSError as error:
            where = "" if parent == path else f" in {parent}"
            raise OutputError(f"{option} {path} cannot be written{where}: "
                              f"{error.strerror or error}") from None
        os.close(handle)
        os.remove(probe)


def remove_partials(folder, prefix=""):
    """Removes what killed writes left in ``folder``: temporary files and folders whose name
    starts with ``.PREFIX`` and holds ``.partial-``. Call it only where no other process is
    writing (the training run's lock, the feature cache's). Returns how many were removed."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            if name.startswith("." + prefix) and PARTIAL in name:
                path = os.path.join(folder, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path beside ``path``; renames it over ``path`` on success.

    ``suffix`` defaults to the target's extension, for writers that infer the format
    from the name (Keras wants ``.keras``, matplotlib ``.png``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    with refused_writes(path):
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + PARTIAL, suffix=suffix or ".tmp", dir=folder)
        os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        with refused_writes(path):
            yield temporary
            _sync(temporary)
            os.replace(temporary, path)
            _sync(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def atomic_folder(path, owns=None):
    """Yields a temporary folder beside ``path``; puts it at ``path`` on success: by one
    rename where ``path`` is missing or empty, else by ``replace_folder`` (``owns``: which
    entries there the write may replace; the caller claimed the folder beforehand,
    ``captioner.folders.claim``)."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    with refused_writes(path):
        os.makedirs(parent, exist_ok=True)
        temporary = tempfile.mkdtemp(prefix="." + os.path.basename(path) + PARTIAL, dir=parent)
    os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
    try:
        with refused_writes(path):
            yield temporary
            for name in os.listdir(temporary):
                if os.path.isfile(os.path.join(temporary, name)):
                    _sync(os.path.join(temporary, name))
            _sync(temporary)
            replace_folder(temporary, path, owns)
            _sync(parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def replace_folder(new, target, owns=None):
    """Puts the entries of folder ``new`` at ``target``: a missing or empty target by one
    rename; else the target's entries that ``owns(name)`` says the write owns are moved
    aside (and then deleted), and the new entries moved in, so that nothing else in the
    target is touched (``owns`` None: the target must be empty)."""
    if not os.path.isdir(target) or not os.listdir(target):
        if os.path.isdir(target):
            os.rmdir(target)
        os.replace(new, target)
        return
    if owns is None:
        os.rmdir(target)  # OSError on a folder that is not empty: nothing is lost
    old = tempfile.mkdtemp(prefix="." + os.path.basename(target) + PARTIAL + "old-",
                           dir=os.path.dirname(target))
    try:
        for name in os.listdir(target):
            if owns(name) and PARTIAL not in name:
                os.replace(os.path.join(target, name), os.path.join(old, name))
        for name in os.listdir(new):
            os.replace(os.path.join(new, name), os.path.join(target, name))
        os.rmdir(new)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _sync(path):
    """Flushes a file's (or a folder's entries') data to the disk, so that a power cut
    after the rename finds the new content, not an empty file."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:  # some file systems cannot sync a folder
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(descriptor)


def copy_file(source, target):
    """Copies ``source`` to ``target`` atomically."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


@contextlib.contextmanager
def file_lock(path, wait=True):
    """Holds an exclusive lock on the file ``path`` (flock; POSIX, elsewhere no lock) until
    the block ends or the process dies, a kill included. ``wait=False``: BlockingIOError
    at once where another process holds it."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with refused_writes(path):
        handle = open(path, "a")
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield


def write_text(path, text):
    """Writes ``text`` to ``path`` atomically (UTF-8; a character that has none, such as
    a file name's undecodable byte, as a backslash escape)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)


def write_json(path, data, indent=2):
    """Writes ``data`` as JSON to ``path`` atomically: UTF-8, or, where a string holds
    what UTF-8 cannot (the undecodable bytes of a file name, kept as surrogates), with
    every non-ASCII character escaped, so that it reads back to the same string."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=indent, ensure_ascii=True)
    write_text(path, text + "\n")


def read_json(path, what="JSON file", prepare=None, object_hook=None):
    """Reads a JSON file, raising :class:`DataError` that names the file and the fault.

    ``prepare``: a function of the open file (text) that returns the text to parse, to
    drop what the caller will not read, say, without holding the whole file; a fault is
    still reported where it is in the file. ``object_hook``: as ``json.loads`` takes it
    (each object as it is parsed)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = prepare(handle) if prepare is not None else handle.read()
        try:
            return json.loads(text, object_hook=object_hook)
        except json.JSONDecodeError:
            if prepare is None:
                raise
        with open(path, encoding="utf-8") as handle:  # where the fault is, in the file
            return json.loads(handle.read(), object_hook=object_hook)
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
    except RecursionError:
        raise DataError(f"{what} nests its lists or objects too deeply to be read: "
                        f"{path}") from None


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
