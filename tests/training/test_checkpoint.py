"""A checkpoint is one unit: a kill between any two of its files leaves the previous
complete checkpoint or the new one, a damaged one is refused by name, and a write the
system refuses leaves the previous checkpoint intact and no half-written file."""

import json
import os
import resource
import signal

import keras
import numpy as np
import pytest

from captioner.errors import OutputError
from captioner.io import PARTIAL
from captioner.saving import load_keras_file
from captioner.training.checkpoint import (
    MODEL,
    CheckpointError,
    Checkpoints,
    folder_name,
    latest_model_path,
)
from tests.helpers import load_model


def write(checkpoints, epoch, best, payload=b"weights"):
    """A checkpoint whose 'model' is a few bytes (the unit logic does not care)."""
    def write_model(folder):
        with open(os.path.join(folder, MODEL), "wb") as handle:
            handle.write(payload + bytes([epoch]))

    def write_best(folder):
        with open(os.path.join(folder, "model.keras"), "wb") as handle:
            handle.write(b"best" + bytes([epoch]))
    pointer = os.path.join(checkpoints.folder, "latest.json")
    before = json.load(open(pointer))["best_folder"] if os.path.isfile(pointer) else None
    state = {"epoch": epoch, "history": [{"epoch": e} for e in range(1, epoch + 1)],
             "best_folder": before}
    checkpoints.write(epoch, state, write_model, write_best if best else None)


def test_the_pointer_names_the_newest_folder_and_only_it_and_the_best_are_kept(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    write(checkpoints, 1, best=True)
    write(checkpoints, 2, best=True)
    write(checkpoints, 3, best=False)
    folder, state = checkpoints.latest()
    assert os.path.basename(folder) == "epoch-0003" and state["epoch"] == 3
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002", "epoch-0003", "latest.json"]
    # kept for its model, without the training file
    assert sorted(os.listdir(tmp_path / "epoch-0002")) == ["best", "state.json"]
    assert checkpoints.best_folder() == str(tmp_path / "epoch-0002" / "best")
    assert state["best_folder"] == "epoch-0002"


def test_a_folder_whose_pointer_a_kill_prevented_is_ignored_then_replaced(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    write(checkpoints, 1, best=True)
    (tmp_path / "epoch-0002").mkdir()  # renamed into place, then killed before the pointer
    (tmp_path / "epoch-0002" / "training.keras").write_bytes(b"stale")
    (tmp_path / f".epoch-0003{PARTIAL}x").mkdir()    # and a folder killed mid-write
    assert checkpoints.latest()[1]["epoch"] == 1
    write(checkpoints, 2, best=False, payload=b"other")
    folder, state = checkpoints.latest()
    assert state["epoch"] == 2 and open(os.path.join(folder, "training.keras"), "rb").read() \
        == b"other\x02"
    assert not any(PARTIAL in name for name in os.listdir(tmp_path))


def test_a_damaged_checkpoint_is_refused_with_what_is_wrong(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    write(checkpoints, 1, best=True)
    model = tmp_path / folder_name(1) / "training.keras"
    model.write_bytes(b"X" + model.read_bytes()[1:])
    with pytest.raises(CheckpointError, match="damaged: training.keras differs"):
        checkpoints.latest()
    write(checkpoints, 2, best=False)
    state_path = tmp_path / folder_name(2) / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "epoch": 1}))  # an edit: its digest is off
    with pytest.raises(CheckpointError, match="state.json differs from what was written"):
        checkpoints.latest()
    state_path.write_text(json.dumps(resealed({**state, "epoch": 1})))
    with pytest.raises(CheckpointError, match="disagrees on its epoch: pointer 2, folder 2, "
                                              "state 1, history 2"):
        checkpoints.latest()


def resealed(state):
    """``state`` with its digest made anew: an edit the digest does not see, to reach the
    checks behind it."""
    from captioner.training.checkpoint import state_digest
    return {**state, "digest": state_digest(state)}


def make_ram_trainer(out, epochs):
    from tests.training.test_loop import make_trainer
    return make_trainer(out, epochs)


def trained_weights(out):
    return load_keras_file(latest_model_path(out)).get_weights()


def test_resume_checks_the_optimizer_step_and_says_what_it_verified(tmp_path, capfd):
    make_ram_trainer(tmp_path, 1).run(progress=False)
    make_ram_trainer(tmp_path, 2).run(resume=True, progress=False, stop_after=0)
    said = capfd.readouterr().err
    assert "resuming" in said and "from epoch 1 of 2" in said
    assert "4 files match their SHA-256, optimizer step 3, random state of 2 generators" in said
    state_path = tmp_path / "checkpoint" / folder_name(1) / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps(resealed({**state, "optimizer_iterations": 2})))
    with pytest.raises(CheckpointError, match="the optimizer is at step 3, the state says 2"):
        make_ram_trainer(tmp_path, 2).run(resume=True, progress=False)
    state_path.write_text(json.dumps(resealed({**state,
                                               "random_state": state["random_state"][:-1]})))
    with pytest.raises(CheckpointError, match="random generators"):
        make_ram_trainer(tmp_path, 2).run(resume=True, progress=False)


class LimitFileSize(keras.callbacks.Callback):
    """From the end of epoch ``epoch`` on, the kernel refuses to grow any file of this
    process beyond ``limit`` bytes (RLIMIT_FSIZE; the write fails with EFBIG): a disk that
    fills up while the checkpoint is written."""

    def __init__(self, epoch, limit):
        super().__init__()
        self.epoch, self.limit = epoch, limit

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self, "done", False):
            return
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen == self.epoch:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.RLIM_INFINITY))
            self.done = True


@pytest.mark.slow  # trains twice
def test_a_refused_write_keeps_the_previous_checkpoint_and_leaves_no_half_file(tmp_path):
    straight = tmp_path / "straight"
    make_ram_trainer(straight, 2).run(progress=False)
    out = tmp_path / "run"
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG rather than a signal
    try:
        with pytest.raises(OutputError, match=r"Cannot write .*training\.keras: File too large; "
                                              r"the checkpoint of epoch 1 .* is intact"):
            make_ram_trainer(out, 2).run(progress=False, callbacks=[LimitFileSize(2, 20_000)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)
        signal.signal(signal.SIGXFSZ, handler)
    leftovers = [os.path.join(root, name) for root, folders, names in os.walk(out)
                 for name in folders + names if PARTIAL in name]
    assert leftovers == []
    assert Checkpoints(out / "checkpoint").latest()[1]["epoch"] == 1
    assert load_model(out).kind == "ram"  # the published model is whole
    make_ram_trainer(out, 2).run(resume=True, progress=False)
    for a, b in zip(trained_weights(straight), trained_weights(out)):
        np.testing.assert_array_equal(a, b)
