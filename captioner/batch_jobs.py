"""Captioning collections too large for one process: a stable share of the inputs per
process (``--shard I/N``), and answers streamed as JSON lines that a later run resumes
from (``--jsonl FILE``).

    captioner caption /data/photos --jsonl out/part-3.jsonl --shard 3/16

A shard is chosen by a hash of each input's path as given, so every process given the
same inputs and ``N`` takes a disjoint share, and the N shares together take them all,
whatever machine or order. A JSON-lines file holds one ``captioner caption --json``
object per line, written as each image is answered; a run that stops (killed, out of
time) leaves every line it finished, and the next run with the same file skips the images
already captioned there (an image that could not be read is tried again). Only the
answers stay on disk: memory does not grow with the number of images.
"""

import hashlib
import json
import os

from captioner.errors import DataError, OutputError
from captioner.text import printable


def parse_shard(text):
    """"I/N" -> (I, N) with 0 <= I < N; ValueError with the reason otherwise."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes I/N, as 3/16. Received: {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard I/N needs 0 <= I < N. Received: {text!r}")
    return index, count


def in_shard(path, index, count):
    """Whether ``path`` (as given) is in shard ``index`` of ``count``."""
    digest = hashlib.sha256(os.fspath(path).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count == index


def shard(paths, index, count):
    """The paths of shard ``index`` of ``count``, in their order."""
    return [path for path in paths if in_shard(path, index, count)]


class JsonLines:
    """A JSON-lines file of answers, opened to add to (see the module docstring).

    ``answered``: the paths captioned in it already. A file that is not one (a line that
    is not a JSON object with a "path") is refused in one line, before any work; a last
    line cut short by a stopped run is dropped.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.answered = set()
        if os.path.isdir(self.path):
            raise OutputError(f"--jsonl {printable(self.path)} is a folder; give a file")
        keep = 0
        if os.path.exists(self.path):
            keep = self._read()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.handle = open(self.path, "ab")
            if keep is not None and self.handle.tell() != keep:
                self.handle.truncate(keep)  # the torn line of a run that stopped mid-write
                self.handle.seek(keep)
        except OSError as error:
            raise OutputError(f"cannot write --jsonl {printable(self.path)}: "
                              f"{error.strerror or error}") from None

    def _read(self):
        """Reads the answered paths; returns the length of its complete lines."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise OutputError(f"cannot read --jsonl {printable(self.path)}: "
                              f"{error.strerror or error}") from None
        complete = data.rfind(b"\n") + 1
        for number, line in enumerate(data[:complete].splitlines(), start=1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or "path" not in entry:
                raise DataError(f"--jsonl {printable(self.path)} is not a file of captioner's "
                                f"answers (line {number} is not one); give a new file")
            if "error" not in entry:
                self.answered.add(entry["path"])
        return complete

    def write(self, entry):
        """Adds one answer (a line, on disk before the next)."""
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        try:
            self.handle.write(line.encode("utf-8", "surrogateescape") + b"\n")
            self.handle.flush()
        except OSError as error:
            raise OutputError(f"cannot write --jsonl {printable(self.path)}: "
                              f"{error.strerror or error}") from None

    def close(self):
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()
