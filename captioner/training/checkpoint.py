"""A training checkpoint is one unit: a folder per epoch, and a pointer written last.

::

    OUT/checkpoint/epoch-0007/training.keras   the model with its optimizer state
                             /vocab.json ...   its labels (``Task.save_labels``)
                             /state.json       epoch, history, best epoch, configurations,
                                               optimizer step, random state, data
                                               fingerprint, and the SHA-256 of every file
                             /best/            the model folder of this epoch, when it is
                                               the best so far (what OUT/ publishes; an
                                               older epoch kept for it keeps only it)
    OUT/checkpoint/latest.json                 {"folder": "epoch-0007", "epoch": 7}

An epoch's folder is written whole under a temporary name and renamed into place
(``io.atomic_folder``); then ``latest.json`` is replaced atomically. A kill at any instant
therefore leaves ``latest.json`` naming either the previous complete folder or the new
one: never a mixture of epochs. Folders that no pointer names (a newer one whose pointer
was never written, older ones, temporary ones) are removed by the next write.

:meth:`Checkpoints.latest` reads and verifies one before a run resumes: the folder's
files against their digests, the epoch of the pointer, the folder and the history
against each other; the caller then checks the optimizer's step and the random state of
the loaded model against the state (``EpochLoop``).

Test hook: with ``CAPTIONER_CHECKPOINT_PAUSE=SECONDS`` in the environment, every write
says ``checkpoint: <what comes next>`` on standard error and sleeps that long between
its files, so that a test can kill the process at each of those moments
(``tests/harness/kill_resume.py``).
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time

from captioner import io
from captioner.errors import ModelError

POINTER, STATE, MODEL, BEST = "latest.json", "state.json", "training.keras", "best"
CHECKPOINT_DIR = "checkpoint"  # OUT/checkpoint
FOLDER = re.compile(r"^epoch-(\d{4,})$")
PAUSE_VARIABLE = "CAPTIONER_CHECKPOINT_PAUSE"


class CheckpointError(ModelError):
    """A checkpoint that is damaged or does not belong to the run being resumed."""


def folder_name(epoch):
    return f"epoch-{epoch:04d}"


def file_digest(path):
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digests(folder):
    """{relative path: SHA-256} of every file under ``folder``."""
    digests = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            digests[os.path.relpath(path, folder).replace(os.sep, "/")] = file_digest(path)
    return digests


def state_digest(state):
    """The SHA-256 of a checkpoint's state (its run record, history, file digests ...),
    but its own "digest" entry: what state.json carries so that an edited record is found."""
    text = json.dumps({key: value for key, value in state.items() if key != "digest"},
                      sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def check_state(state, path):
    """Raises CheckpointError where the state read from ``path`` is not what was written:
    its "digest" (written since 0.5) differs from its content's."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint state (a JSON object)")
    if "digest" in state and state["digest"] != state_digest(state):
        raise CheckpointError(f"{path} differs from what was written (its digest does not "
                              "match): the checkpoint's record was edited or damaged")


def pause(what):
    """The test hook (see the module docstring): announce ``what`` comes next, and wait."""
    seconds = os.environ.get(PAUSE_VARIABLE)
    if seconds:
        print(f"checkpoint: {what}", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


class Checkpoints:
    """The checkpoints of a training run, in ``folder`` (OUT/checkpoint)."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)

    @property
    def pointer(self):
        return os.path.join(self.folder, POINTER)

    def exists(self):
        """Whether a complete checkpoint was written (a run to resume)."""
        return os.path.isfile(self.pointer) or self._legacy() is not None

    def write(self, epoch, state, write_model, write_best=None):
        """Writes the checkpoint of ``epoch`` as one unit; returns its folder.

        ``write_model(folder)`` saves the model with its optimizer (``MODEL``) and its
        labels into ``folder``;
        ``write_best(folder)``, given when this epoch is the best so far, writes the model
        folder into ``folder``. ``state`` (JSON-able) gets the file digests added."""
        name = folder_name(epoch)
        target = os.path.join(self.folder, name)
        best = name if write_best is not None else state.get("best_folder")
        state["best_folder"] = best
        if os.path.isdir(target) and name != (self._read_pointer() or {}).get("folder"):
            shutil.rmtree(target)  # a complete folder whose pointer a kill prevented
        with io.atomic_folder(target) as temporary:
            pause("training.keras")
            write_model(temporary)
            if write_best is not None:
                pause("best model folder")
                os.makedirs(os.path.join(temporary, BEST))
                write_best(os.path.join(temporary, BEST))
            pause("state.json")
            written = {**state, "files": folder_digests(temporary)}
            io.write_json(os.path.join(temporary, STATE),
                          {**written, "digest": state_digest(written)})
            pause("rename of the epoch folder")
        pause("latest.json")
        own = self._own_folders(self._read_pointer() or {}) | {name}
        io.write_json(self.pointer, {"folder": name, "epoch": epoch, "best_folder": best,
                                     "written": sorted(own)})
        pause("removal of older checkpoints")
        self.prune(keep={name, best})
        return target

    def _own_folders(self, pointer):
        """The epoch folders this run wrote before: those its pointer lists ("written"),
        or, for a pointer from before that list, every epoch folder with a state.json;
        none without a pointer."""
        if not pointer:
            return set()
        if "written" in pointer:
            return {name for name in pointer["written"] if isinstance(name, str)}
        return {name for name in os.listdir(self.folder) if FOLDER.match(name)
                and os.path.isfile(os.path.join(self.folder, name, STATE))}

    def prune(self, keep=None):
        """Removes the epoch folders this run wrote (``_own_folders``) but the pointer's
        and the best model's, and whatever killed writes left behind; an epoch folder the
        run's records do not list is left alone."""
        pointer = self._read_pointer() or {}
        latest = pointer.get("folder")
        if keep is None:
            keep = {latest, pointer.get("best_folder")} - {None}
        own = self._own_folders(pointer)
        io.remove_partials(self.folder)
        present = set(os.listdir(self.folder)) if os.path.isdir(self.folder) else set()
        for name in sorted(own & present):
            if name not in keep:
                shutil.rmtree(os.path.join(self.folder, name), ignore_errors=True)
            elif name != latest:  # kept for its best model alone
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.folder, name, MODEL))
        if pointer and own - keep:  # the records list only what is left
            left = sorted(name for name in own if os.path.isdir(os.path.join(self.folder, name)))
            if left != pointer.get("written"):
                io.write_json(self.pointer, {**pointer, "written": left})
        for name in ("last.keras", "state.json"):  # the single-file format before this one
            if latest and os.path.isfile(os.path.join(self.folder, name)):
                os.remove(os.path.join(self.folder, name))

    def latest(self):
        """(folder, state) of the newest complete checkpoint, verified; None if there is
        none. Raises CheckpointError for one that is damaged."""
        pointer = self._read_pointer()
        if pointer is None:
            legacy = self._legacy()
            return None if legacy is None else (self.folder, legacy)
        name = pointer["folder"]
        folder = os.path.join(self.folder, name)
        if not os.path.isdir(folder):
            raise CheckpointError(f"{self.pointer} names {name}, which is not there")
        state = io.read_json(os.path.join(folder, STATE), "checkpoint state")
        check_state(state, os.path.join(folder, STATE))
        state.pop("digest", None)
        expected = state.get("files", {})
        found = folder_digests(folder)
        found.pop(STATE, None)
        if MODEL not in expected or found != expected:
            differ = sorted(set(found.items()) ^ set(expected.items()))
            raise CheckpointError(f"Checkpoint {folder} is damaged: "
                                  f"{differ[0][0] if differ else MODEL} differs from what was "
                                  "written")
        epochs = {"pointer": pointer.get("epoch"), "folder": int(FOLDER.match(name).group(1)),
                  "state": state.get("epoch"), "history": len(state.get("history", ()))}
        if len(set(epochs.values())) != 1:
            raise CheckpointError(f"Checkpoint {folder} disagrees on its epoch: " + ", ".join(
                f"{k} {v}" for k, v in epochs.items()))
        best = pointer.get("best_folder")
        if best and not os.path.isfile(os.path.join(self.folder, best, BEST, "model.keras")):
            raise CheckpointError(f"Checkpoint {folder}: the best epoch's model ({best}/best) "
                                  "is missing")
        return folder, state

    def model_path(self, folder):
        """The model file (with optimizer) of a checkpoint folder ``latest`` returned."""
        legacy = os.path.join(folder, "last.keras")
        return legacy if folder == self.folder else os.path.join(folder, MODEL)

    def best_folder(self):
        """The model folder of the best epoch (None before the first checkpoint, and in the
        single-file format)."""
        best = (self._read_pointer() or {}).get("best_folder")
        return os.path.join(self.folder, best, BEST) if best else None

    def _read_pointer(self):
        """latest.json ({"folder", "epoch", "best_folder"}), or None where there is none."""
        if not os.path.isfile(self.pointer):
            return None
        pointer = io.read_json(self.pointer, "checkpoint pointer")
        name = pointer.get("folder") if isinstance(pointer, dict) else None
        if not isinstance(name, str) or not FOLDER.match(name):
            raise CheckpointError(f"{self.pointer} does not name an epoch folder")
        best, written = pointer.get("best_folder"), pointer.get("written", [])
        if best is not None and not (isinstance(best, str) and FOLDER.match(best)):
            raise CheckpointError(f"{self.pointer}: best_folder {best!r} is not an epoch "
                                  "folder of the run")
        if not isinstance(written, list) or not all(
                isinstance(n, str) and FOLDER.match(n) for n in written):
            raise CheckpointError(f"{self.pointer}: written must list epoch folders of the "
                                  "run")
        return pointer

    def _legacy(self):
        """The state of a run written in the single-file format (last.keras and state.json,
        the state written last), or None."""
        state_path = os.path.join(self.folder, "state.json")
        if os.path.isfile(self.pointer) or not os.path.isfile(state_path):
            return None
        return io.read_json(state_path, "training state")


def latest_model_path(out):
    """The model file (with optimizer) of the newest checkpoint of the run in ``out``."""
    checkpoints = Checkpoints(os.path.join(out, "checkpoint"))
    found = checkpoints.latest()
    if found is None:
        raise CheckpointError(f"No checkpoint in {out}")
    return checkpoints.model_path(found[0])
